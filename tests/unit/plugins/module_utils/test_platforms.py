"""platforms.py: the argument specs the modules build, the options each platform owns, and the dispatch."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils import platforms
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput
from tests.support.fake_module import FakeModule


def params(platform, **given):
    """What AnsibleModule hands over: every option of the full spec, None unless given (or defaulted)."""
    spec = platforms.argument_spec("docker_rollout", "docker_container")
    out = {name: option.get("default") for name, option in spec.items()}
    out.update(platform=platform, name="web", **given)
    return out


@pytest.fixture
def no_backend(monkeypatch):
    """Fail the test if a backend is constructed (a refused input must change and read nothing)."""
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker import backend as docker_backend
    from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import backend as k8s_backend

    def refuse(*_args, **_kwargs):
        raise AssertionError("the backend was constructed")
    monkeypatch.setattr(docker_backend, "DockerPlatform", refuse)
    monkeypatch.setattr(k8s_backend, "KubernetesPlatform", refuse)


def test_no_option_a_platform_owns_has_a_default_or_an_environment_fallback():
    # a default (or DOCKER_HOST's fallback) would make every task look as if it gave the option
    spec = platforms.argument_spec("docker_rollout", "docker_container")
    owned = platforms.platform_options()
    assert {"kubeconfig", "namespace", "kind", "validate_certs"} <= owned["kubernetes"]
    assert {"docker_host", "load_balancer", "batch_size", "docker_container", "pull"} <= owned["docker"]
    for platform, names in owned.items():
        for name in names & set(spec):
            assert "default" not in spec[name] and "fallback" not in spec[name], (platform, name, spec[name])
    assert not owned["docker"] & owned["kubernetes"]


@pytest.mark.parametrize("platform, given, named", [
    ("docker", {"kubeconfig": "/etc/kube/config"}, "kubeconfig applies to platform=kubernetes only"),
    ("docker", {"namespace": "prod"}, "namespace applies to platform=kubernetes only"),
    ("docker", {"kind": "Deployment"}, "kind applies to platform=kubernetes only"),
    ("docker", {"context": "c", "validate_certs": False}, "context, validate_certs apply to platform=kubernetes only"),
    ("kubernetes", {"docker_host": "unix:///var/run/docker.sock"}, "docker_host applies to platform=docker only"),
    ("kubernetes", {"load_balancer": {"type": "haproxy"}}, "load_balancer applies to platform=docker only"),
    ("kubernetes", {"batch_size": 2, "health_timeout": 0}, "batch_size, health_timeout apply to platform=docker only"),
])
def test_an_option_of_the_other_platform_is_refused_before_anything(no_backend, platform, given, named):
    module = FakeModule(params(platform, **given))
    with pytest.raises(SystemExit):
        platforms.run(module, lambda _platform: pytest.fail("the action ran"))
    assert named in module.failed["msg"] and f"this task has platform={platform}" in module.failed["msg"]


def test_unset_options_of_the_other_platform_are_fine_and_kubernetes_defaults_apply(monkeypatch):
    built = []
    from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import backend as k8s_backend
    monkeypatch.setattr(k8s_backend, "KubernetesPlatform", lambda module, workload: built.append(workload) or workload)
    monkeypatch.setattr(platforms, "check_platform", lambda name: None)
    platforms.get_platform(FakeModule(params("kubernetes")))
    assert (built[0].kind, built[0].namespace) == ("Deployment", "default")
    platforms.get_platform(FakeModule(params("kubernetes", namespace="prod", kind="StatefulSet")))
    assert (built[1].kind, built[1].namespace) == ("StatefulSet", "prod")


def test_check_options_names_every_offending_option_at_once():
    with pytest.raises(InvalidInput) as err:
        platforms.check_options({"docker_host": "tcp://h:2376", "retain": 0, "kubeconfig": None}, "kubernetes")
    assert err.value.msg.startswith("docker_host, retain apply to platform=docker only")
