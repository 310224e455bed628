# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The Docker-host backend: a workload is a labelled set of containers behind a load balancer.

DockerPlatform answers the Platform interface and plans each change: create, scale, upgrade (to a new revision,
or to a retained one, restarted), finishing an interrupted or partial rollout, rollback. Planning is read-only
until the first change; that takes the workload's lock and plans again from a fresh read, so that a run that
waited for another acts on what that one left. Check mode stops before the lock and says what would be done.

What it plans on and with: workload.py (the containers, images and load balancer members as found, the status
and the wait), change.py (the lock, the end of a change and its result), swap.py (the start-first batch swap,
one replica factory), status.py and preflight.py (pure verdicts), engine.py (every engine call).
"""

from __future__ import annotations

import contextlib
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NO_BALANCER_WARNING
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import preflight as preflight_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.blue_green import (
    BlueGreenPlan,
    blue_green_strategy,
    check_blue_green,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.adopt import adoption_findings
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.change import ChangeRun
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import lock_container, lock_name
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import (
    LABEL_REVISION,
    Replica,
    check_addressing,
    check_workload_name,
    clone_config,
    creation_config,
    lb_network_option,
    tcp_reach,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History, RevisionGroup, assert_group, reusable
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.rollback import RollbackPlan
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.status import note_lock
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import StepsPlan, check_steps, steps_strategy
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import ReplicaFactory, batch_limit
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload import DockerWorkload
from ansible_collections.zerodown.rollout.plugins.module_utils.progressive import Step
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    Finding,
    InvalidInput,
    Platform,
    RolloutError,
    RolloutStatus,
    WorkloadNotFound,
    check_non_negative,
    check_positive,
    parse_image_reference,
)


class DockerPlatform(Platform):
    """The Docker-host implementation of :class:`Platform`."""

    name = "docker"

    def __init__(self, module: t.Any, workload: t.Any) -> None:
        super().__init__(module, workload)
        check_workload_name(workload.name)
        self.params: dict[str, t.Any] = dict(module.params)
        # its containers, images and load balancer members on the engine (workload.py); params are read when used
        self.docker = DockerWorkload(workload, self.params, self._run_command)
        # the change it makes: the lock, the swap, the background stops, the result (change.py)
        self.change = ChangeRun(self.docker, module, self.params)
        self._steps: t.Optional[list[Step]] = None  # strategy=steps: the run's steps (steps.py)
        self._blue_green: t.Optional[float] = None  # strategy=blue_green: its standby seconds (blue_green.py)

    def _run_command(self, argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(argv)
        return rc, out, err

    # -- reading -----------------------------------------------------------------------------------
    def status(self) -> RolloutStatus:
        status = self.docker.status(self.docker.existing())
        name = lock_name(self.workload.name)
        found = lock_container(self.docker.engine, name)
        if found is not None:
            note_lock(status, name, found[1])
        return status

    def history(self) -> list:
        return self.docker.existing().revisions(self.workload.name)

    def wait(self, revision: t.Optional[int], timeout: float, progress: t.Any = None) -> RolloutStatus:
        return self.docker.wait(revision, timeout, progress)

    # -- validation --------------------------------------------------------------------------------
    def _validate_rollout_params(self) -> None:
        p = self.params
        check_positive(p, "batch_size", "replicas", "max_batches")
        check_non_negative(p, "batch_interval", "health_timeout", "drain_timeout", "stop_timeout", "retain",
                           "wait_timeout", "lock_timeout")
        if p.get("health_timeout") == 0:
            raise InvalidInput("health_timeout must be more than 0: the seconds a new container may take to become "
                               "healthy (and UP in the load balancer); no container is healthy the instant it starts")

    def _check_balancer(self) -> None:
        """Before any change: fail on a load balancer that cannot be driven; warn when there is none."""
        if not self.docker.balancer.routes:
            self.module.warn(NO_BALANCER_WARNING)

    # -- upgrade -----------------------------------------------------------------------------------
    def upgrade(self, params: dict[str, t.Any]) -> ActionResult:
        result = self._upgrade(params)
        result.extra.setdefault("partial", False)
        return result

    def _upgrade(self, params: dict[str, t.Any]) -> ActionResult:
        self.params.update(params)
        p = self.params
        image = str(parse_image_reference(p.get("image")))
        self._validate_rollout_params()
        if p.get("container"):
            raise InvalidInput("container applies to platform=kubernetes only; a Docker workload runs one "
                               "container per replica")
        history = self.docker.load()
        if history.current is not None:
            # how the load balancer reaches the replicas is fixed at creation: a docker_container asking otherwise is refused
            check_addressing(p.get("docker_container"), history.current.newest.lb_network, self.docker.lb_network,
                             self.workload.describe())
        self.docker.adoption.check_change(self.docker.balancer.routes)
        self._check_balancer()
        self._steps = check_steps(p, self.docker.balancer) if steps_strategy(p) else None
        self._blue_green = check_blue_green(p, self.docker.balancer) if blue_green_strategy(p) else None
        return self._plan_upgrade(image, history)

    def _plan_upgrade(self, image: str, history: History) -> ActionResult:
        """Decide from ``history`` and act. Read-only until the first change; that takes the lock and plans
        again from a fresh read, so that a run that waited for another acts on what that one left."""
        p = self.params
        if not history.exists:
            return self._create(image, p)
        current = history.current
        assert_group(current)
        # containers of other revisions still running: an earlier run was interrupted mid-swap
        stale = [r for r in history.replicas if r.running and r.revision != current.number]
        aimed = max((r.desired for r in current.running if r.desired), default=None) if stale else None
        desired = p.get("replicas") or aimed or len(current.running) or len(current.replicas)
        pull = p.get("pull") or "missing"
        local = self.docker.local_image(image)
        same_image = current.image == image and (local is None or local.get("Id") == current.newest.image_id)
        before = {"revision": current.number, "image": current.image, "replicas": len(current.running)}
        cause = p.get("change_cause") or f"image_upgrade to {image}"
        if same_image and len(current.running) == desired and not stale:
            return self.change.nothing_to_swap(history, current.number, before,
                                               f"{self.workload.describe()} already runs {image} (revision {current.number}) "
                                               f"with {desired} replicas",
                                               lambda: self._upgrade_under_lock(image, [current.newest.image_id]))
        limit = batch_limit(self.params)
        if same_image and stale and limit is not None:
            return self._continue_partial(history, current, stale, desired, limit, before)
        if same_image and stale and self._steps is not None:
            return StepsPlan(self, self._steps).resume(
                history, current, stale, desired, before,
                lambda message: self.change.result(True, history, current.number, current.number, before,
                                                   dict(before, replicas=desired), message),
                lambda: self._upgrade_under_lock(image, [current.newest.image_id]))
        if same_image and stale and self._blue_green is not None:
            return BlueGreenPlan(self, self._blue_green).resume(
                history, current, stale, desired, before,
                lambda message: self.change.result(True, history, current.number, current.number, before,
                                                   dict(before, replicas=desired), message),
                lambda: self._upgrade_under_lock(image, [current.newest.image_id]))
        if same_image:
            after = dict(before, replicas=desired)
            what = f"{self.workload.describe()} from {len(current.running)} to {desired} replicas"
            if stale:
                what = (f"the rollout of {self.workload.describe()} to revision {current.number}: swap the "
                        f"{len(stale)} replica(s) of older revisions still serving, {desired} replicas in the end")
            if self.module.check_mode:
                return self.change.result(True, history, current.number, current.number, before, after,
                                          f"would {'finish' if stale else 'scale'} {what}")
            if not self.change.holding_lock:
                return self._upgrade_under_lock(image, [current.newest.image_id])
            if not stale:
                self._scale(current, desired)
                return self.change.finish(current.number, current.number, before, f"scaled {what}")
            # a canary or an interrupted run left old replicas serving: swap them out batch by batch, as the
            # upgrade itself would have (a steps rollout's weights go: the rolling swap gives every member one)
            self._shift_to(current.running, stale)
            self.change.swap.take_in_missing(current.running)
            running = len(current.running)
            batches = 0
            with self._failure_says_what(f"finishing the rollout of {self.workload.describe()} to revision {current.number}",
                                         current.number):
                if running < desired:
                    batches = self.change.swap.run(sorted(stale, key=lambda r: r.name), desired - running,
                                                   self.replicas_of(current, desired))
                else:
                    if running > desired:
                        self._scale(current, desired)
                    self.change.swap.take_out(stale)
            return self.change.finish(current.number, current.number, before,
                                      f"finished the rollout of {self.workload.describe()} to revision {current.number} "
                                      f"({current.image}): {desired} replicas"
                                      + (f", {batches} more batch(es)" if batches else ""))
        batch = int(p.get("batch_size") or 1)
        partial = limit is not None and limit * batch < desired
        image_id = (local or {}).get("Id")
        if pull == "always" and not self.module.check_mode:
            image_id = self.docker.ensure_image(image, pull).get("Id")
        reuse = reusable(history, current, image, image_id, self.docker.image_config)
        if self._steps is not None or self._blue_green is not None:
            return self._weighted_upgrade(history, current, stale, image, reuse, desired, before, local is None)
        if reuse is not None:
            return self._upgrade_to_retained(history, current, stale, reuse, desired, before, partial)
        number = history.next_number
        after = {"revision": number, "image": image, "replicas": desired}
        if partial:
            after["replicas"] = min(limit * batch, desired)
        if self.module.check_mode:
            result = self.change.result(True, history, number, current.number, before, after,
                                        f"would upgrade {self.workload.describe()} from {current.image} (revision "
                                        f"{current.number}) to {image} (revision {number})"
                                        + (f", {after['replicas']} of {desired} replicas in the first {limit} batch(es)"
                                           if partial else "")
                                        + ("" if local is not None else f"; {image} would be pulled"))
            result.extra["partial"] = partial
            return result
        info = self.docker.ensure_image(image, pull)
        if not self.change.holding_lock:
            return self._upgrade_under_lock(image, [current.newest.image_id, info.get("Id", "")])
        start = self._copies(number, image, current.newest.attrs, cause, desired)
        old = sorted(current.running, key=lambda r: r.name) + sorted(stale, key=lambda r: r.name)
        with self._failure_says_what(f"upgrade of {self.workload.describe()} to {image}", current.number):
            batches = self.change.swap.run(old, desired, start, limit * batch if limit is not None else None)
        return self.change.finish(number, current.number, before,
                                  f"{self.workload.describe()} upgraded from revision {current.number} ({current.image}) to "
                                  f"revision {number} ({image}) in {batches} batch(es)")

    def _upgrade_to_retained(self, history: History, current: RevisionGroup, stale: list[Replica],
                             target: RevisionGroup, desired: int, before: dict[str, t.Any],
                             partial: bool) -> ActionResult:
        """An upgrade to the image and configuration of the retained revision ``target``: its stopped containers
        are restarted (no pull, no new container) and swapped in as a rollback does; it keeps its number."""
        limit = batch_limit(self.params)
        batch = int(self.params.get("batch_size") or 1)
        after = {"revision": target.number, "image": target.image, "replicas": desired}
        if partial:
            after["replicas"] = min((limit or 0) * batch, desired)
        kept = min(len(target.stopped), after["replicas"])
        how = f"restarting the {kept} retained container(s) of revision {target.number}"
        if after["replicas"] > kept:
            how += f" and creating {after['replicas'] - kept} more"
        what = (f"{self.workload.describe()} from {current.image} (revision {current.number}) to {target.image}, "
                f"the image and configuration of retained revision {target.number}")
        if self.module.check_mode:
            result = self.change.result(True, history, target.number, current.number, before, after,
                                        f"would upgrade {what}: it would restart revision {target.number} ({how}), which "
                                        "keeps its number; no pull, no new revision"
                                        + (f", {after['replicas']} of {desired} replicas in the first {limit} batch(es)"
                                           if partial else ""))
            result.extra["partial"] = partial
            return result
        if not self.change.holding_lock:
            return self._upgrade_under_lock(target.image, [current.newest.image_id, target.newest.image_id])
        old = sorted(current.running, key=lambda r: r.name) + sorted(stale, key=lambda r: r.name)
        with self._failure_says_what(f"upgrade of {self.workload.describe()} to {target.image} (revision {target.number})",
                                     current.number):
            batches = self.change.swap.run(old, desired, self.replicas_of(target, desired),
                                           limit * batch if limit is not None else None)
        return self.change.finish(target.number, current.number, before,
                                  f"{self.workload.describe()} upgraded from revision {current.number} ({current.image}) to "
                                  f"{target.image} by {how} in {batches} batch(es): revision {target.number} is current "
                                  "again under its own number")

    @contextlib.contextmanager
    def _failure_says_what(self, what: str, revision: int) -> t.Iterator[None]:
        """A failed swap says what failed and the revision the workload is back on (for a rescue)."""
        try:
            yield
        except RolloutError as err:
            err.details.setdefault("revision", revision)
            err.msg = f"{what} failed: {err.msg}"
            raise

    def _upgrade_under_lock(self, image: str, images: t.Sequence[str]) -> ActionResult:
        return self.change.locked("image_upgrade", image, images, lambda: self._plan_upgrade(image, self.docker.load()))

    def _continue_partial(self, history: History, current: RevisionGroup, stale: list[Replica], desired: int,
                          limit: int, before: dict[str, t.Any]) -> ActionResult:
        """An upgrade with ``max_batches`` on a workload a partial run left half-swapped to the same image:
        nothing to do when the new revision already covers ``limit`` batches, else swap up to that."""
        batch = int(self.params.get("batch_size") or 1)
        target = min(limit * batch, desired)
        running = len(current.running)
        what = f"{self.workload.describe()} revision {current.number} ({current.image})"
        if running >= target:
            result = self.change.nothing_to_swap(history, current.number, before,
                                                 f"{what} already runs {running} of {desired} replicas, at least max_batches="
                                                 f"{limit} batch(es) of {batch}; run without max_batches to finish the upgrade",
                                                 lambda: self._upgrade_under_lock(current.image, [current.newest.image_id]))
            result.extra["partial"] = True
            return result
        more = target - running
        after = dict(before, replicas=target)
        if self.module.check_mode:
            result = self.change.result(True, history, current.number, current.number, before, after,
                                        f"would swap {more} more replica(s) of {what}, {target} of {desired}")
            result.extra["partial"] = target < desired
            return result
        if not self.change.holding_lock:
            return self._upgrade_under_lock(current.image, [current.newest.image_id])
        self.change.swap.take_in_missing(current.running)
        old = sorted(stale, key=lambda r: r.name)
        # the swap runs until ``more`` new replicas are in (no batch beyond them): old ones left keep serving
        with self._failure_says_what(f"upgrade of {what}", current.number):
            batches = self.change.swap.run(old, desired - running, self.replicas_of(current, desired), more)
        return self.change.finish(current.number, current.number, before,
                                  f"swapped {batches} more batch(es) of {what}, {target} of {desired} replicas")

    def _create(self, image: str, p: dict[str, t.Any]) -> ActionResult:
        replicas = p.get("replicas")
        if not replicas:
            raise WorkloadNotFound(
                f"{self.workload.describe()} does not exist on {self.docker.host()}; to create it, set replicas "
                "(and docker_container: port, env...)"
            )
        spec = p.get("docker_container") or {}
        network = lb_network_option(spec)
        if network is not None:
            network = self.docker.lb_network(network)  # refused before anything changes (in check mode too)
        after = {"revision": 1, "image": image, "replicas": replicas}
        if self.module.check_mode:
            return ActionResult(changed=True, workload=self.workload, revision=1, previous_revision=None,
                                images={self.workload.name: image}, before={}, after=after,
                                message=f"would create {self.workload.describe()} with {replicas} replicas of {image}")
        info = self.docker.ensure_image(image, p.get("pull") or "missing")
        if not self.change.holding_lock:  # a run that waited finds the workload created: it plans as for any other
            return self._upgrade_under_lock(image, [info.get("Id", "")])
        cause = p.get("change_cause") or f"created with {image}"
        config, later_names = creation_config(image, self.workload.name, 1, cause, spec, info.get("Config") or {},
                                              replicas, network)
        start = ReplicaFactory(self.docker.engine, self.module.warn, self.workload.name, 1,
                               lambda: (dict(config), [(n, []) for n in later_names]))
        self.change.swap.run([], replicas, start)
        return self.change.finish(1, None, {}, f"created {self.workload.describe()} with {replicas} replicas of {image}")

    def _weighted_upgrade(self, history: History, current: RevisionGroup, stale: list[Replica], image: str,
                          reuse: t.Optional[RevisionGroup], desired: int, before: dict[str, t.Any],
                          pulls: bool) -> ActionResult:
        """An upgrade in steps or blue-green (the whole new set at weight 0 first) to a new revision of ``image``,
        or to the retained revision ``reuse`` restarted."""
        number = reuse.number if reuse is not None else history.next_number
        after = {"revision": number, "image": image, "replicas": desired}
        plan: t.Union[StepsPlan, BlueGreenPlan] = (BlueGreenPlan(self, self._blue_green) if self._blue_green is not None
                                                   else StepsPlan(self, self._steps or []))

        def check_result(message: str) -> ActionResult:
            if reuse is not None:
                message += f"; revision {number}'s retained containers would be restarted"
            elif pulls:
                message += f"; {image} would be pulled"
            return self.change.result(True, history, number, current.number, before, after, message)

        if self.module.check_mode:
            return plan.fresh(history, current, stale, number, image, None, desired, before, check_result,
                              lambda: check_result(""))
        images = [current.newest.image_id]
        if reuse is not None:
            images.append(reuse.newest.image_id)
        else:
            images.append(self.docker.ensure_image(image, self.params.get("pull") or "missing").get("Id", ""))
        if not self.change.holding_lock:
            return self._upgrade_under_lock(image, images)
        cause = self.params.get("change_cause") or f"image_upgrade to {image}"
        start = (self.replicas_of(reuse, desired) if reuse is not None
                 else self._copies(number, image, current.newest.attrs, cause, desired))
        with self._failure_says_what(f"upgrade of {self.workload.describe()} to {image}", current.number):
            return plan.fresh(history, current, stale, number, image, start, desired, before, check_result,
                              lambda: self._upgrade_under_lock(image, images))

    def _shift_to(self, keep: t.Sequence[Replica], others: t.Sequence[Replica], raise_zero: bool = True) -> None:
        """Where a steps or blue-green rollout left weights: the members of ``keep`` get their default weight back
        and those of ``others`` (about to be taken out) weight 0 at once, so that requests move before the drain.
        ``keep`` is raised first, ``others`` lowered second: between the two both serve, never neither. Unless
        ``raise_zero``, members of ``keep`` at weight 0 (a blue-green standby) stay at 0, as long as another
        member of ``keep`` takes requests."""
        lb = self.docker.balancer
        if not lb.weights:
            return

        def names(reps: t.Sequence[Replica]) -> list[str]:
            return [n for r in reps for n in lb.member_names(r.name) if n in lb.intent]
        raised, lowered = names(keep), names(others)
        if not raise_zero and any(lb.weights.get(n) != 0 for n in raised):
            raised = [n for n in raised if lb.weights.get(n) != 0]
        if raised:
            lb.set_weights({n: None for n in raised})
        if lowered:
            lb.set_weights({n: 0 for n in lowered})

    def _scale(self, current: RevisionGroup, desired: int) -> None:
        running = sorted(current.running, key=lambda r: (r.created or "", r.name))
        if desired < len(running):
            self.change.swap.take_out(running[desired:], remove=True)
            return
        self.change.swap.run([], desired - len(running), self.replicas_of(current, desired, restart=False))

    def replicas_of(self, group: RevisionGroup, desired: int, restart: bool = True) -> ReplicaFactory:
        """Replicas of ``group`` for the swap: its retained (stopped) containers restarted first (unless not
        ``restart``: a scale-up only adds copies), then copies of its newest container if it kept fewer."""
        newest = group.newest
        return self._copies(group.number, group.image, newest.attrs, newest.change_cause, desired,
                            group.stopped if restart else ())

    def _copies(self, revision: int, image: str, template: dict[str, t.Any], cause: t.Optional[str], desired: int,
                retained: t.Sequence[Replica] = ()) -> ReplicaFactory:
        """Replicas of ``revision`` for the swap: ``retained`` containers restarted first, then copies of the
        container ``template`` (inspected) with ``image``; what it got from its own image is left out."""
        image_config = self.docker.image_config(template.get("Image", ""))
        copies = self.docker.copies  # an adopted or Compose template: its labels, ports and name (adopt.py)

        def config() -> tuple[dict[str, t.Any], list[tuple[str, list[str]]]]:
            body, later = clone_config(template, image_config, image, revision, cause, desired)
            return copies.adapt(body, template), later
        return ReplicaFactory(self.docker.engine, self.module.warn, self.workload.name, revision, config, retained,
                              copies.name)

    # -- rollback ----------------------------------------------------------------------------------
    def rollback(self, params: dict[str, t.Any]) -> ActionResult:
        self.params.update(params)
        p = self.params
        self._validate_rollout_params()
        check_non_negative(p, "to_revision")
        history = self.docker.existing()
        self._check_balancer()
        return RollbackPlan(self).plan(history)

    # -- pre-flight --------------------------------------------------------------------------------
    checks = preflight_mod.CHECKS

    def preflight(self, params: dict[str, t.Any]) -> list[Finding]:
        self.params.update(params)
        history = self.docker.load()
        balancer: t.Optional[str] = None
        advisories: list[str] = []
        if history.exists:
            try:
                lb = self.docker.balancer  # built and checked on first use: an unusable one is a finding, not a failure
                lb.check()
                balancer = "" if lb.routes else None
                advisories = lb.advisories()
            except RolloutError as err:
                balancer = err.msg
        return preflight_mod.lint(history, self.workload.describe(), self.docker.host(), balancer,
                                  (self.params.get("health_check") or {}).get("path"), self._network_facts(history),
                                  advisories) + adoption_findings(self.docker.adoption, history, balancer)

    def _network_facts(self, history: History) -> t.Optional[preflight_mod.NetworkFacts]:
        """What preflight needs to know about the network the replicas are reached on (None: they publish ports):
        whether the engine has it, its driver, and, on a local engine, whether this host connects to a replica."""
        current = history.current
        if current is None or not current.newest.lb_network:
            return None
        name = current.newest.lb_network
        found = self.docker.network(name)
        driver = (found.get("Driver") or "unknown") if found is not None else None
        facts = preflight_mod.NetworkFacts(name, driver, engine_is_local(self.docker.engine_label()))
        running = sorted((r for r in current.running if r.address), key=lambda r: r.name)
        if found is not None and facts.local and running:
            facts.address = running[0].address
            facts.unreachable = tcp_reach(facts.address or "")
        return facts


def engine_is_local(label: str) -> bool:
    """Whether engine ``label`` (``unix://...``, ``tcp://host:port``, ``ssh://...``) runs on this machine."""
    if label.startswith("unix://"):
        return True
    host = label.split("://", 1)[-1].split("@")[-1].rsplit(":", 1)[0].strip("[]")
    return label.startswith("tcp://") and (host in ("localhost", "::1") or host.startswith("127."))


__all__ = ["DockerPlatform", "LABEL_REVISION"]
