# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The Kubernetes backend: image upgrade, rollout wait, rollback, info and pre-flight lint.

Deployments, StatefulSets and DaemonSets through the official ``kubernetes`` client. Check mode
uses a server-side dry run (``dryRun=All``), so admission and validation run as for the real change.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import revisions as rev
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.canary import canary_action
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.client import (
    HAS_KUBERNETES,
    KubeClient,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.preflight import CHECKS, lint
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.waiter import RolloutWaiter
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.workloads import adapter_for
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    Finding,
    ImageRef,
    InvalidInput,
    Platform,
    ProgressCallback,
    ProgressLog,
    Revision,
    RolloutError,
    RolloutStatus,
    WaitTimeout,
    WorkloadRef,
    parse_image_reference,
)

# How long a task that does not wait still gives the controller to assign the new revision number.
OBSERVE_TIMEOUT = 15.0


def normalize_repository(repository: str) -> str:
    """A repository without Docker Hub's implicit prefixes, so 'nginx' matches 'docker.io/library/nginx'."""
    repo = repository
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            break
    if repo.startswith("library/") and repo.count("/") == 1:
        repo = repo[len("library/"):]
    return repo


def _repository_of(image: str) -> t.Optional[str]:
    try:
        return normalize_repository(parse_image_reference(image).repository)
    except InvalidInput:
        return None


class KubernetesPlatform(Platform):
    """:class:`Platform` for Kubernetes workloads."""

    name = "kubernetes"

    def __init__(self, module: t.Any, workload: WorkloadRef) -> None:
        super().__init__(module, workload)
        if not HAS_KUBERNETES:
            raise InvalidInput(missing_required_lib("kubernetes"))
        if not workload.namespace:
            raise InvalidInput("namespace must be the non-empty name of a Kubernetes namespace")
        self.params: dict[str, t.Any] = dict(getattr(module, "params", {}) or {})
        limit = self.params.get("readiness_failure_limit")
        self.readiness_failure_limit = 10 if limit is None else int(limit)
        if self.readiness_failure_limit < 0:
            raise InvalidInput(f"readiness_failure_limit must be 0 (off) or more, got {self.readiness_failure_limit}")
        self.wait_old_pods_gone = bool(self.params.get("wait_old_pods_gone"))
        self.client = KubeClient.from_params(self.params)
        self.adapter = adapter_for(self.client, workload)

    @property
    def check_mode(self) -> bool:
        return bool(getattr(self.module, "check_mode", False))

    def waiter(self) -> RolloutWaiter:
        return RolloutWaiter(self.adapter, self.readiness_failure_limit, wait_old_pods_gone=self.wait_old_pods_gone)

    # ------------------------------------------------------------------------------------ reading
    def status(self) -> RolloutStatus:
        return self.waiter().evaluate(self.adapter.get(), None)

    def history(self) -> list[Revision]:
        obj = self.adapter.get()
        entries = self.adapter.history(obj)
        current = self.adapter.current_entry(obj, entries)
        current_number = self.adapter.current_revision(obj, entries)
        out = []
        for entry in entries:
            is_current = entry.number == current_number if current_number else entry is current
            out.append(entry.to_revision(is_current, self.adapter.history_kind))
        return out

    def wait(self, revision: t.Optional[int], timeout: float,
             progress: t.Optional[ProgressCallback] = None) -> RolloutStatus:
        return self.waiter().wait(timeout, revision=revision, progress=progress)

    checks = CHECKS

    def preflight(self, params: dict[str, t.Any]) -> list[Finding]:
        # skip is checked by Platform.lint; the skipped checks are not even run
        return lint(self.workload.kind, self.adapter.get(), params.get("skip") or ())

    # ------------------------------------------------------------------------------------ helpers
    @staticmethod
    def _diff_view(obj: dict[str, t.Any]) -> dict[str, t.Any]:
        spec = obj.get("spec") or {}
        view: dict[str, t.Any] = {"template": spec.get("template") or {}}
        if "replicas" in spec:
            view["replicas"] = spec.get("replicas")
        cause = (rev.meta(obj).get("annotations") or {}).get(rev.CHANGE_CAUSE_ANNOTATION)
        if cause is not None:
            view["change_cause"] = cause
        return view

    def _settle(self, patched: dict[str, t.Any], wait: bool, timeout: float, predicted: t.Optional[int],
                progress: list[dict[str, t.Any]], details: dict[str, t.Any]) -> tuple[t.Optional[int], t.Optional[RolloutStatus]]:
        """After a real change: wait for the rollout (or only for the new revision number)."""
        generation = int(rev.meta(patched).get("generation") or 0)
        record = ProgressLog()
        record.entries = progress  # the caller's list, returned as progress

        waiter = self.waiter()
        try:
            if wait:
                status = waiter.wait(timeout, min_generation=generation, progress=record, initial=patched)
            else:
                status = waiter.wait(min(timeout, OBSERVE_TIMEOUT) if timeout else OBSERVE_TIMEOUT,
                                     min_generation=generation, until_observed=True, initial=patched)
        except WaitTimeout as err:
            if wait:
                raise self._annotate(err, details, progress)
            self.module.warn(f"the controller has not yet observed the change to {self.workload.describe()}; "
                             "the reported revision is the expected one")
            return predicted, None
        except RolloutError as err:
            raise self._annotate(err, details, progress)
        return status.revision if status.revision is not None else predicted, status

    @staticmethod
    def _annotate(err: RolloutError, details: dict[str, t.Any], progress: list[dict[str, t.Any]]) -> RolloutError:
        # The change happened even though the wait failed: say so, so that a rescue can roll back.
        for key, value in details.items():
            err.details.setdefault(key, value)
        err.details.setdefault("progress", progress)
        return err

    def _predicted_revision(self, entries: list[rev.HistoryEntry], current: t.Optional[int]) -> t.Optional[int]:
        numbers = [e.number for e in entries] + ([current] if current else [])
        return (max(numbers) + 1) if numbers else 1

    def matching_containers(self, template: t.Optional[dict[str, t.Any]], image: ImageRef,
                            wanted: t.Optional[str]) -> list[tuple[str, dict[str, t.Any]]]:
        """The containers of ``template`` a new ``image`` applies to, as (list key, container) pairs.

        The one named ``wanted``, else every container (init containers included) whose image repository is the
        repository of ``image``; raises InvalidInput, listing the containers, when there is none."""
        pod_spec = (template or {}).get("spec") or {}
        containers = [("containers", c) for c in pod_spec.get("containers") or []]
        containers += [("initContainers", c) for c in pod_spec.get("initContainers") or []]
        listing = ", ".join(f"{c.get('name')} ({c.get('image')})" for dummy, c in containers) or "none"
        if wanted:
            targets = [(key, c) for key, c in containers if c.get("name") == wanted]
            if not targets:
                raise InvalidInput(
                    f"{self.workload.describe()} has no container named {wanted!r}; its containers are: {listing}")
            return targets
        repo = normalize_repository(image.repository)
        targets = [(key, c) for key, c in containers if _repository_of(c.get("image", "")) == repo]
        if not targets:
            raise InvalidInput(
                f"no container of {self.workload.describe()} runs an image of repository {image.repository!r}; "
                f"its containers are: {listing}. Set container to the one to change")
        return targets

    # ------------------------------------------------------------------------------------ upgrade
    def upgrade(self, params: dict[str, t.Any]) -> ActionResult:
        if params.get("canary") is not None:
            # a canary Deployment next to the workload: the workload itself is not touched
            return canary_action(self, params)
        image_text = (params.get("image") or "").strip()
        image = parse_image_reference(image_text)
        wait = bool(params.get("wait", True))
        timeout = params.get("wait_timeout")
        timeout = 300 if timeout is None else timeout
        if timeout < 0:
            raise InvalidInput(f"wait_timeout must be zero or more seconds, got {timeout}")
        replicas = params.get("replicas")
        if replicas is not None:
            if self.workload.kind == "DaemonSet":
                raise InvalidInput("replicas does not apply to a DaemonSet (it runs one pod per eligible node)")
            if replicas < 0:
                raise InvalidInput(f"replicas must be zero or more, got {replicas}")

        obj = self.adapter.get()
        spec = obj.get("spec") or {}
        targets = self.matching_containers(spec.get("template"), image, params.get("container"))

        previous_images = rev.template_images(spec.get("template"))
        changes = {c.get("name"): key for key, c in targets if c.get("image") != image_text}
        images = dict(previous_images)
        images.update({name: image_text for name in changes})
        replicas_change = replicas is not None and replicas != spec.get("replicas")

        waiter = self.waiter()
        entries = self.adapter.history(obj)
        current = waiter.evaluate(obj, None).revision
        if not changes and not replicas_change:
            status = None
            if wait and not self.check_mode:
                progress: list[dict[str, t.Any]] = []
                status = self._settle(obj, True, float(timeout), current, progress,
                                      {"changed": False, "revision": current, "previous_revision": current})[1]
            else:
                status = waiter.evaluate(obj, None)
            return ActionResult(
                changed=False, workload=self.workload, revision=current, previous_revision=current,
                images=images, previous_images=previous_images, status=status,
                message=f"{self.workload.describe()} already runs {image_text}",
            )

        body: dict[str, t.Any] = {"spec": {}}
        if changes:
            cause = params.get("change_cause") or (
                "zerodown.rollout.image_upgrade " + ", ".join(f"{n}={image_text}" for n in sorted(changes)))
            body["metadata"] = {"annotations": {rev.CHANGE_CAUSE_ANNOTATION: cause}}
            lists: dict[str, list[dict[str, str]]] = {}
            for name, key in changes.items():
                lists.setdefault(key, []).append({"name": name, "image": image_text})
            body["spec"]["template"] = {"spec": lists}
        if replicas_change:
            body["spec"]["replicas"] = replicas

        patched = self.client.patch(self.adapter.kind, self.adapter.name, self.adapter.namespace, body, "strategic",
                                    dry_run=self.check_mode)
        predicted = self._predicted_revision(entries, current) if changes else current
        result = ActionResult(
            changed=True, workload=self.workload, revision=predicted, previous_revision=current, images=images,
            previous_images=previous_images, before=self._diff_view(obj), after=self._diff_view(patched),
        )
        what = ", ".join(f"{n}={image_text}" for n in sorted(changes)) or f"replicas={replicas}"
        if self.check_mode:
            result.message = f"{self.workload.describe()} would be upgraded ({what}) to revision {predicted}"
            return result
        progress = []
        details = {"changed": True, "revision": predicted, "previous_revision": current,
                   "images": images, "previous_images": previous_images}
        result.revision, result.status = self._settle(patched, wait, float(timeout), predicted, progress, details)
        result.extra["progress"] = progress
        result.message = f"{self.workload.describe()} upgraded ({what}) from revision {current} to {result.revision}"
        return result

    # ------------------------------------------------------------------------------------ rollback
    def rollback(self, params: dict[str, t.Any]) -> ActionResult:
        to_revision = params.get("to_revision")
        if to_revision is not None and to_revision < 0:
            raise InvalidInput(f"to_revision must be a revision number (1 or more), got {to_revision}")
        wait = bool(params.get("wait", True))
        timeout = params.get("wait_timeout")
        timeout = 300 if timeout is None else timeout
        if timeout < 0:
            raise InvalidInput(f"wait_timeout must be zero or more seconds, got {timeout}")

        obj = self.adapter.get()
        spec = obj.get("spec") or {}
        paused = self.workload.kind == "Deployment" and bool(spec.get("paused"))
        if paused and not params.get("allow_paused"):
            raise InvalidInput(
                f"{self.workload.describe()} is paused; a rollback would not roll out. Resume it first "
                "(kubectl rollout resume), or set allow_paused=true to change the template anyway")
        waiter = self.waiter()
        entries = self.adapter.history(obj)
        current = waiter.evaluate(obj, None).revision
        aliases = rev.parse_aliases((rev.meta(obj).get("annotations") or {}).get(rev.ALIASES_ANNOTATION))
        target = rev.select_target(entries, to_revision or None, self.workload.describe(), aliases)
        previous_images = rev.template_images(spec.get("template"))
        images = rev.template_images(target.template)

        if rev.templates_equal(target.template, spec.get("template")):
            status = None
            if wait and not self.check_mode and not paused:
                status = self._settle(obj, True, float(timeout), current, [],
                                      {"changed": False, "revision": current, "previous_revision": current})[1]
            else:
                status = waiter.evaluate(obj, None)
            return ActionResult(
                changed=False, workload=self.workload, revision=current, previous_revision=current, images=images,
                previous_images=previous_images, status=status,
                message=f"skipped rollback: the template of {self.workload.describe()} already matches revision "
                        f"{target.number}",
                extra={"rolled_back_to": target.number},
            )

        if self.workload.kind == "Deployment":
            patched = self.client.patch("Deployment", self.adapter.name, self.adapter.namespace,
                                        rev.deployment_rollback_patch(obj, target), "json", dry_run=self.check_mode)
        else:
            patched = self.client.patch(self.adapter.kind, self.adapter.name, self.adapter.namespace,
                                        rev.controller_revision_patch(target, obj), "strategic", dry_run=self.check_mode)
        predicted = self._predicted_revision(entries, current)
        result = ActionResult(
            changed=True, workload=self.workload, revision=predicted, previous_revision=current, images=images,
            previous_images=previous_images, before=self._diff_view(obj), after=self._diff_view(patched),
            extra={"rolled_back_to": target.number},
        )
        if self.check_mode:
            result.message = (f"{self.workload.describe()} would be rolled back from revision {current} to revision "
                              f"{target.number} (as new revision {predicted})")
            return result
        progress: list[dict[str, t.Any]] = []
        details = {"changed": True, "revision": predicted, "previous_revision": current, "rolled_back_to": target.number,
                   "images": images, "previous_images": previous_images}
        if paused:
            result.status = waiter.evaluate(self.adapter.get(), None)
            self.module.warn(f"{self.workload.describe()} is paused: the rollback is recorded but rolls out only "
                             "after it is resumed")
        else:
            result.revision, result.status = self._settle(patched, wait, float(timeout), predicted, progress, details)
        result.extra["progress"] = progress
        result.message = (f"{self.workload.describe()} rolled back from revision {current} to revision "
                          f"{target.number} (now revision {result.revision})")
        return result
