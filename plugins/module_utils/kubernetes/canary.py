# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""image_upgrade's ``canary`` option: a canary Deployment next to a workload, created, waited for and removed.

The canary is a copy of the workload's pod template running the new image, labelled ``track=canary`` (in its
selector too, so that its pods are never the workload's, while a Service selecting the workload's labels sends
them their share of the traffic). The workload itself is only read. ``present`` creates or updates it (a server-side
dry run in check mode) and waits with :class:`waiter.RolloutWaiter`; ``absent`` scales it to 0, waits until its
pods are gone, terminating ones included, and deletes it.
"""

from __future__ import annotations

import copy
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import revisions as rev
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.waiter import RolloutWaiter
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.workloads import DeploymentAdapter
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    InvalidInput,
    ProgressLog,
    RolloutError,
    WorkloadNotFound,
    WorkloadRef,
    parse_image_reference,
)

TRACK_LABEL = "track"
TRACK_CANARY = "canary"
# which workload a canary belongs to; a Deployment of the canary's name without it is never changed or removed
CANARY_OF_ANNOTATION = "zerodown.rollout/canary-of"
CANARY_IMAGE_ANNOTATION = "zerodown.rollout/canary-image"
DEFAULT_REPLICAS = 1
DEFAULT_SUFFIX = "-canary"
# a DNS-1123 subdomain: what the API server accepts as a Deployment's name
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_NAME = 253
# the workload's spec fields the canary copies besides its template and selector
COPIED_SPEC_FIELDS = ("strategy", "minReadySeconds", "progressDeadlineSeconds")


@dataclass(frozen=True)
class CanaryRequest:
    """The ``canary`` option, checked: what to do, to which Deployment, with how many pods."""

    state: str
    name: str
    replicas: int

    @classmethod
    def from_params(cls, params: dict[str, t.Any], workload: WorkloadRef) -> "CanaryRequest":
        """Check the option against the task before anything is read; raises InvalidInput."""
        option = params.get("canary") or {}
        if workload.kind != "Deployment":
            raise InvalidInput(f"canary needs kind=Deployment, and this task has kind={workload.kind}: a canary is a "
                               "Deployment next to a Deployment. Upgrade a StatefulSet or DaemonSet without canary")
        state = option.get("state")
        state = "present" if state is None else state
        if state not in ("present", "absent"):
            raise InvalidInput(f"canary.state must be present or absent, got {state!r}")
        replicas = option.get("replicas")
        if state == "absent":
            given = [name for name in ("image", "container", "change_cause", "replicas") if params.get(name) is not None]
            given += ["canary.replicas"] if replicas is not None else []
            if given:
                raise InvalidInput(
                    f"{', '.join(given)} cannot be given with canary.state=absent: the canary is removed whatever it "
                    f"runs. Remove {'it' if len(given) == 1 else 'them'}")
            replicas = 0
        else:
            replicas = DEFAULT_REPLICAS if replicas is None else replicas
            if replicas < 1:
                raise InvalidInput(f"canary.replicas must be 1 or more, got {replicas}; to remove the canary, "
                                   "set canary.state=absent")
            if params.get("replicas") is not None:
                raise InvalidInput("replicas sets the workload's replicas, and a canary leaves the workload as it is: "
                                   "remove replicas (canary.replicas sizes the canary)")
            if not (params.get("image") or "").strip():
                raise InvalidInput("image is required with canary.state=present: the image the canary runs")
        suffix = option.get("name_suffix")
        suffix = DEFAULT_SUFFIX if suffix is None else suffix
        if not suffix:
            raise InvalidInput("canary.name_suffix must not be empty: the canary would have the workload's own name")
        name = f"{workload.name}{suffix}"
        if len(name) > MAX_NAME or not _NAME_RE.match(name):
            raise InvalidInput(
                f"canary.name_suffix={suffix!r} makes the canary's name {name!r}, which is not a valid Kubernetes "
                f"name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at "
                f"most {MAX_NAME} characters)")
        return cls(state=state, name=name, replicas=replicas)


def canary_manifest(workload: dict[str, t.Any], name: str, image: str, containers: t.Iterable[str],
                    replicas: int, cause: str) -> dict[str, t.Any]:
    """The canary Deployment: the workload's pod template with ``image`` in ``containers``, ``track=canary``."""
    meta = rev.meta(workload)
    spec = workload.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template_meta = template.setdefault("metadata", {})
    labels = dict(template_meta.get("labels") or {})
    labels[TRACK_LABEL] = TRACK_CANARY
    template_meta["labels"] = labels
    wanted = set(containers)
    pod_spec = template.setdefault("spec", {})
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or []:
            if container.get("name") in wanted:
                container["image"] = image
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = dict(selector.get("matchLabels") or {}, **{TRACK_LABEL: TRACK_CANARY})
    body: dict[str, t.Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": dict(labels),
            "annotations": {
                CANARY_OF_ANNOTATION: meta.get("name"),
                CANARY_IMAGE_ANNOTATION: image,
                rev.CHANGE_CAUSE_ANNOTATION: cause,
            },
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    }
    for field in COPIED_SPEC_FIELDS:
        if field in spec:
            body["spec"][field] = copy.deepcopy(spec[field])
    return body


def canary_view(obj: t.Optional[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The canary as the diff and the ``canary`` return value show it ({} when there is none)."""
    if not obj:
        return {}
    spec = obj.get("spec") or {}
    return {
        "name": rev.meta(obj).get("name"),
        "replicas": spec.get("replicas"),
        "image": (rev.meta(obj).get("annotations") or {}).get(CANARY_IMAGE_ANNOTATION),
        "images": rev.template_images(spec.get("template")),
    }


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def update_patch(desired: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The JSON patch that makes an existing canary's template, replicas, labels and annotations ``desired``'s."""
    ops: list[dict[str, t.Any]] = [
        {"op": "replace", "path": "/spec/template", "value": desired["spec"]["template"]},
        {"op": "replace", "path": "/spec/replicas", "value": desired["spec"]["replicas"]},
        {"op": "add", "path": "/metadata/labels", "value": desired["metadata"]["labels"]},
    ]
    for key, value in desired["metadata"]["annotations"].items():
        ops.append({"op": "add", "path": f"/metadata/annotations/{_pointer(key)}", "value": value})
    return ops


class Canary:
    """One canary task: ``platform`` is the :class:`backend.KubernetesPlatform` of the workload."""

    def __init__(self, platform: t.Any, request: CanaryRequest) -> None:
        self.platform = platform
        self.request = request
        self.client = platform.client
        self.workload = platform.workload
        self.ref = WorkloadRef(platform="kubernetes", name=request.name, kind="Deployment",
                               namespace=platform.workload.namespace)
        self.adapter = DeploymentAdapter(self.client, self.ref)

    @property
    def check_mode(self) -> bool:
        return self.platform.check_mode

    def waiter(self) -> RolloutWaiter:
        return RolloutWaiter(self.adapter, self.platform.readiness_failure_limit)

    def read(self) -> t.Optional[dict[str, t.Any]]:
        """The canary Deployment, None when there is none; refuses one that is not this workload's canary."""
        try:
            obj = self.adapter.get()
        except WorkloadNotFound:
            return None
        owner = (rev.meta(obj).get("annotations") or {}).get(CANARY_OF_ANNOTATION)
        if owner != self.workload.name:
            raise InvalidInput(
                f"{self.ref.describe()} exists and is not the canary of {self.workload.describe()} (its "
                f"{CANARY_OF_ANNOTATION} annotation is {owner!r}); it is left as it is. Choose another "
                "canary.name_suffix, or remove that Deployment yourself")
        return obj

    def _result(self, changed: bool, workload: t.Optional[dict[str, t.Any]], before: dict[str, t.Any],
                after: dict[str, t.Any], message: str, progress: list[dict[str, t.Any]],
                canary_status: t.Optional[dict[str, t.Any]] = None) -> ActionResult:
        revision = status = None
        images: dict[str, str] = {}
        if workload is not None:
            status = self.platform.waiter().evaluate(workload, None)
            revision = status.revision
            images = rev.template_images((workload.get("spec") or {}).get("template"))
        returned = {"name": self.request.name, "state": self.request.state, "replicas": after.get("replicas", 0),
                    "image": (after or before).get("image"), "images": (after or before).get("images") or {}}
        if canary_status is not None:
            returned["status"] = canary_status
        return ActionResult(
            changed=changed, workload=self.workload, revision=revision, previous_revision=revision, images=images,
            previous_images=dict(images), status=status, before=before, after=after, message=message,
            extra={"canary": returned, "progress": progress},
        )

    @staticmethod
    def _timeout(params: dict[str, t.Any]) -> float:
        timeout = params.get("wait_timeout")
        timeout = 300 if timeout is None else timeout
        if timeout < 0:
            raise InvalidInput(f"wait_timeout must be zero or more seconds, got {timeout}")
        return float(timeout)

    # ------------------------------------------------------------------------------------ present
    def present(self, params: dict[str, t.Any]) -> ActionResult:
        image_text = params["image"].strip()
        image = parse_image_reference(image_text)
        wait = bool(params.get("wait", True))
        timeout = self._timeout(params)
        workload = self.platform.adapter.get()
        spec = workload.get("spec") or {}
        workload_replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
        if self.request.replicas > workload_replicas:
            raise InvalidInput(
                f"canary.replicas={self.request.replicas} is more than the {workload_replicas} replica(s) of "
                f"{self.workload.describe()}: the canary would take most of the traffic. Give {workload_replicas} "
                "or fewer")
        targets = self.platform.matching_containers(spec.get("template"), image, params.get("container"))
        names = sorted({c.get("name") for dummy, c in targets})
        cause = params.get("change_cause") or (
            f"zerodown.rollout.image_upgrade canary of {self.workload.name}: "
            + ", ".join(f"{n}={image_text}" for n in names))
        desired = canary_manifest(workload, self.request.name, image_text, names, self.request.replicas, cause)
        existing = self.read()
        before = canary_view(existing)
        if existing is not None:
            have = existing.get("spec") or {}
            if (have.get("selector") or {}) != desired["spec"]["selector"]:
                raise InvalidInput(
                    f"the selector of {self.ref.describe()} ({rev.selector_string(have.get('selector'))}) is not the "
                    f"one {self.workload.describe()} gives now ({rev.selector_string(desired['spec']['selector'])}), "
                    "and a selector cannot be changed: remove the canary first (canary.state=absent)")
            if have.get("replicas") == desired["spec"]["replicas"] and \
                    rev.templates_equal(have.get("template"), desired["spec"]["template"]):
                return self._settle(False, workload, existing, before, wait, timeout,
                                    f"the canary {self.ref.describe()} already runs {image_text} with "
                                    f"{self.request.replicas} replica(s)")
            changed_obj = self.client.patch("Deployment", self.request.name, self.ref.namespace,
                                            update_patch(desired), "json", dry_run=self.check_mode)
            verb = "updated"
        else:
            changed_obj = self.client.create("Deployment", self.ref.namespace, desired, dry_run=self.check_mode)
            verb = "created"
        what = f"the canary {self.ref.describe()} ({self.request.replicas} replica(s) of {image_text})"
        if self.check_mode:
            return self._result(True, workload, before, canary_view(changed_obj), f"{what} would be {verb}", [])
        return self._settle(True, workload, changed_obj, before, wait, timeout, f"{what} {verb}")

    def _settle(self, changed: bool, workload: dict[str, t.Any], obj: dict[str, t.Any], before: dict[str, t.Any],
                wait: bool, timeout: float, message: str) -> ActionResult:
        """Wait (with ``wait``) until the canary's pods are ready, then the result."""
        progress = ProgressLog()
        canary_status = None
        if wait and not self.check_mode:
            try:
                status = self.waiter().wait(timeout, min_generation=int(rev.meta(obj).get("generation") or 0),
                                            progress=progress, initial=obj)
            except RolloutError as err:
                # say what was done, so that a rescue knows there is a canary to remove
                err.details.setdefault("changed", changed)
                err.details.setdefault("canary", {"name": self.request.name, "state": "present",
                                                  "replicas": self.request.replicas,
                                                  "image": canary_view(obj).get("image")})
                err.details.setdefault("progress", progress.entries)
                raise
            canary_status = status.to_dict()
        return self._result(changed, workload, before, canary_view(obj), message, progress.entries, canary_status)

    # ------------------------------------------------------------------------------------ absent
    def absent(self, params: dict[str, t.Any]) -> ActionResult:
        wait = bool(params.get("wait", True))
        timeout = self._timeout(params)
        existing = self.read()
        try:
            workload: t.Optional[dict[str, t.Any]] = self.platform.adapter.get()
        except WorkloadNotFound:  # a canary left behind by a workload that is gone is still removed
            workload = None
        if existing is None:
            return self._result(False, workload, {}, {}, f"there is no canary {self.ref.describe()} to remove", [])
        before = canary_view(existing)
        if self.check_mode:
            return self._result(True, workload, before, {}, f"the canary {self.ref.describe()} would be removed", [])
        progress = ProgressLog()
        if (existing.get("spec") or {}).get("replicas") != 0:
            self.client.patch("Deployment", self.request.name, self.ref.namespace, {"spec": {"replicas": 0}},
                              "strategic")
            progress.note(f"{self.ref.describe()} scaled to 0")
        if wait:
            selector = rev.selector_string((existing.get("spec") or {}).get("selector"))
            try:
                self.waiter().wait_pods_gone(selector, timeout, progress.note)
            except RolloutError as err:
                err.msg += (". The canary is scaled to 0 and left in place; run the task again to remove it once "
                            "its pods are gone")
                err.details.setdefault("changed", True)
                err.details.setdefault("canary", dict(before, state="present", replicas=0))
                err.details.setdefault("progress", progress.entries)
                raise
        try:
            self.client.delete("Deployment", self.request.name, self.ref.namespace)
        except WorkloadNotFound:
            pass  # removed by someone else meanwhile: what was asked for
        progress.note(f"{self.ref.describe()} deleted")
        return self._result(True, workload, before, {}, f"the canary {self.ref.describe()} was removed",
                            progress.entries)


def canary_action(platform: t.Any, params: dict[str, t.Any]) -> ActionResult:
    """image_upgrade with ``canary``: run or remove the canary of ``platform``'s workload."""
    request = CanaryRequest.from_params(params, platform.workload)
    canary = Canary(platform, request)
    return canary.present(params) if request.state == "present" else canary.absent(params)
