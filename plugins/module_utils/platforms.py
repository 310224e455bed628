# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Glue shared by the modules: the common argument spec, platform dispatch, error handling.

Modules stay thin: ``argument_spec(...)`` -> ``AnsibleModule`` -> ``run(module, action)``. Each
backend contributes its own options (``DOCKER_ARGS`` / ``KUBERNETES_ARGS``), which are documented in
the ``zerodown.rollout.docker`` and ``zerodown.rollout.kubernetes`` doc fragments.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.dependencies import check_platform
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    Platform,
    RolloutError,
    WorkloadRef,
)

PLATFORMS = ("docker", "kubernetes")
KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# kind and namespace are Kubernetes options (PLATFORM_OPTIONS below); their defaults, Deployment and
# "default", are applied in get_platform so that a Docker task that sets them can be told apart and refused.
COMMON_ARGS: dict[str, dict[str, t.Any]] = {
    "platform": {"type": "str", "required": True, "choices": list(PLATFORMS)},
    "name": {"type": "str", "required": True},
    "kind": {"type": "str", "choices": list(KINDS)},
    "namespace": {"type": "str"},
}


def _backend_arg_tables() -> tuple[t.Any, dict[str, dict[str, t.Any]], dict[str, dict[str, t.Any]]]:
    """(the Docker backend's args module or None, the Kubernetes options or {}, image_upgrade's Kubernetes canary
    option or {}): a backend missing from the build has no options."""
    try:
        from ansible_collections.zerodown.rollout.plugins.module_utils.docker import args as docker_args
    except ImportError:  # the backend is not part of this build
        docker_args = None
    try:
        from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.args import (
            KUBERNETES_ARGS,
            KUBERNETES_CANARY_ARGS,
        )
    except ImportError:
        KUBERNETES_ARGS, KUBERNETES_CANARY_ARGS = {}, {}
    return docker_args, KUBERNETES_ARGS, KUBERNETES_CANARY_ARGS


def platform_options() -> dict[str, frozenset[str]]:
    """The options each platform owns, by platform: given with another platform, they are refused.

    None of them has a default in the argument spec (each backend applies its documented default), so a value
    that is not None was given by the task (or its module_defaults)."""
    owned: dict[str, set[str]] = {"kubernetes": {"kind", "namespace"}, "docker": set()}
    docker_args, kubernetes_args, canary_args = _backend_arg_tables()
    if docker_args is not None:
        owned["docker"] |= set(docker_args.DOCKER_ARGS) | set(docker_args.DOCKER_ROLLOUT_ARGS) | \
            set(docker_args.DOCKER_CONTAINER_ARGS)
    owned["kubernetes"] |= set(kubernetes_args) | set(canary_args)
    for spec in kubernetes_args.values():
        owned["kubernetes"] |= set(spec.get("aliases") or ())
    return {name: frozenset(options) for name, options in owned.items()}


# (option, platform it was given with) -> what that platform offers instead
OTHER_PLATFORM_HINTS = {
    ("canary", "docker"): "on a Docker host a canary is max_batches (with batch_size, the first replicas only; a later "
                          "run swaps the rest) or strategy=steps (weighted steps behind the load balancer)",
}


def check_options(params: dict[str, t.Any], platform: str) -> None:
    """Refuse, before anything is read or changed, an option another platform owns that the task gave."""
    for other, options in platform_options().items():
        if other == platform:
            continue
        given = sorted(name for name in options if params.get(name) is not None)
        if given:
            hints = "".join(f"; {OTHER_PLATFORM_HINTS[(name, platform)]}" for name in given
                            if (name, platform) in OTHER_PLATFORM_HINTS)
            raise InvalidInput(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to platform={other} only, and this "
                f"task has platform={platform}: remove {'it' if len(given) == 1 else 'them'} (or check module_defaults)"
                f"{hints}"
            )


def _backend_args(groups: t.Sequence[str] = ()) -> dict[str, dict[str, t.Any]]:
    spec: dict[str, dict[str, t.Any]] = {}
    docker_args, kubernetes_args, canary_args = _backend_arg_tables()
    if docker_args is not None:
        spec.update(docker_args.DOCKER_ARGS)
        # option groups only some modules take (documented in the matching doc fragment sections)
        if "docker_rollout" in groups:
            spec.update(docker_args.DOCKER_ROLLOUT_ARGS)
        if "docker_container" in groups:
            spec.update(docker_args.DOCKER_CONTAINER_ARGS)
    spec.update(kubernetes_args)
    if "kubernetes_canary" in groups:
        spec.update(canary_args)
    return spec


def argument_spec(*groups: str, **module_args: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """The full argument spec of a module: common + both backends' + the module's own options.

    ``groups`` names the optional option groups the module takes: ``docker_rollout`` (how Docker
    containers are swapped: fragment ``zerodown.rollout.docker.ROLLOUT``), ``docker_container``
    (how a new Docker workload is created: ``zerodown.rollout.docker.CONTAINER``) and ``kubernetes_canary``
    (image_upgrade's canary Deployment: ``zerodown.rollout.kubernetes.CANARY``).
    """
    spec = dict(COMMON_ARGS)
    spec.update(_backend_args(groups))
    spec.update(module_args)
    return spec


def get_platform(module: t.Any) -> Platform:
    """Instantiate the backend named by ``platform``; raises InvalidInput for unusable choices."""
    params = module.params
    check_options(params, params["platform"])
    kubernetes = params["platform"] == "kubernetes"
    workload = WorkloadRef(
        platform=params["platform"],
        name=params["name"],
        kind=params.get("kind") or "Deployment",
        namespace=(params["namespace"] if params.get("namespace") is not None else "default") if kubernetes else None,
    )
    if not workload.name or not workload.name.strip():
        raise InvalidInput("name must be the non-empty name of the workload")
    # Python and the backend's libraries within the supported range, before anything is read or changed
    check_platform(workload.platform)
    if workload.platform == "docker":
        try:
            from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
        except ImportError as exc:  # only when the backend itself is missing from the build
            raise InvalidInput(f"platform=docker is not available in this build of the collection ({exc})")
        return DockerPlatform(module, workload)
    try:
        from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.backend import KubernetesPlatform
    except ImportError as exc:
        raise InvalidInput(f"platform=kubernetes is not available in this build of the collection ({exc})")
    return KubernetesPlatform(module, workload)


def run(module: t.Any, action: t.Callable[[Platform], dict[str, t.Any]]) -> None:
    """Run ``action`` on the module's platform and exit; every RolloutError becomes a clean failure."""
    failure: t.Optional[RolloutError] = None
    try:
        platform = get_platform(module)
        result = action(platform)
    except RolloutError as err:
        failure = err
    # fail outside the except block: inside it, ansible-core attaches the (meaningless) traceback
    if failure is not None:
        module.fail_json(msg=failure.msg, **failure.details)
    module.exit_json(**result)
