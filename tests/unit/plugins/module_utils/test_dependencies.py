"""The supported range: each floor check refuses a too-old library with the versions named, before any call."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils import dependencies, platforms
from ansible_collections.zerodown.rollout.plugins.module_utils.dependencies import (
    FLOORS,
    LibraryTooOld,
    check_platform,
    installed_version,
    parse_version,
)
from tests.support.fake_module import FakeModule

NEWEST = {"kubernetes": "37.0.2", "docker": "7.2.0", "requests": "2.34.2"}
OLDEST = {"kubernetes": "24.2.0", "docker": "5.0.3", "requests": "2.28.1"}
PY39, PY313 = (3, 9, 18), (3, 13, 0)


def versions(**override):
    table = dict(NEWEST, **override)
    return table.get


@pytest.mark.parametrize("platform, table, python", [
    ("kubernetes", NEWEST, PY313),
    ("kubernetes", OLDEST, PY39),
    ("docker", NEWEST, PY313),
    ("docker", OLDEST, PY39),
    ("docker", {"docker": "6.0.0", "requests": "2.31.0"}, PY313),
    ("docker", {"docker": "7.1.0", "requests": "2.32.3"}, PY39),
])
def test_the_supported_range_passes(platform, table, python):
    check_platform(platform, table.get, python)


def test_a_library_that_is_not_installed_is_left_to_the_backend():
    check_platform("kubernetes", {}.get, PY313)
    check_platform("docker", {}.get, PY313)


@pytest.mark.parametrize("platform, library, installed", [
    ("kubernetes", "kubernetes", "22.6.0"),
    ("kubernetes", "kubernetes", "24.1.9"),
    ("docker", "docker", "4.4.4"),
    ("docker", "requests", "2.25.1"),
])
def test_a_library_below_its_floor_is_named_with_both_versions(platform, library, installed):
    with pytest.raises(LibraryTooOld) as err:
        check_platform(platform, dict(OLDEST, **{library: installed}).get, PY39)
    assert f"{library} {installed} is installed" in err.value.msg
    assert f"{library} >= {FLOORS[library]}" in err.value.msg
    assert "Nothing was changed" in err.value.msg


def test_docker_5_on_python_3_12_needs_6():
    with pytest.raises(LibraryTooOld, match=r"docker 5\.0\.3 is installed .* needs docker >= 6\.0\.0 .*distutils"):
        check_platform("docker", versions(docker="5.0.3", requests="2.28.1"), (3, 12, 1))


def test_docker_before_7_1_with_requests_2_32():
    with pytest.raises(LibraryTooOld, match=r"docker 6\.1\.3 is installed .* needs docker >= 7\.1\.0 .*requests 2\.32\.3"):
        check_platform("docker", versions(docker="6.1.3", requests="2.32.3"), PY39)


def test_python_below_3_9():
    with pytest.raises(LibraryTooOld, match=r"Python 3\.8\.18 runs the task; zerodown\.rollout needs Python >= 3\.9"):
        check_platform("kubernetes", versions(), (3, 8, 18))


def test_parse_version_and_installed_version():
    assert parse_version("24.2.0") == (24, 2, 0)
    assert parse_version("26.1.0a1") == (26, 1, 0)
    assert parse_version("37.0.2") > parse_version("24.2.0") > parse_version("9.0")
    assert parse_version("garbage") == ()
    assert installed_version("kubernetes") is not None
    assert installed_version("surely-not-an-installed-distribution-zd") is None


@pytest.mark.parametrize("platform, library, installed", [
    ("kubernetes", "kubernetes", "23.6.0"),
    ("docker", "docker", "5.0.2"),
    ("docker", "requests", "2.27.1"),
])
def test_a_too_old_library_fails_the_task_before_the_backend_is_built(monkeypatch, platform, library, installed):
    table = dict(OLDEST, **{library: installed})
    monkeypatch.setattr(dependencies, "installed_version", table.get)
    built = []

    def refuse(*args, **kwargs):
        built.append(args)
        raise AssertionError("the backend was constructed")

    from ansible_collections.zerodown.rollout.plugins.module_utils.docker import backend as docker_backend
    from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import backend as k8s_backend
    monkeypatch.setattr(docker_backend, "DockerPlatform", refuse)
    monkeypatch.setattr(k8s_backend, "KubernetesPlatform", refuse)
    module = FakeModule({"platform": platform, "name": "web", "kind": None, "namespace": None})  # as AnsibleModule: unset
    action_calls = []
    with pytest.raises(SystemExit):
        platforms.run(module, action_calls.append)
    assert built == [] and action_calls == []
    assert f"{library} {installed} is installed" in module.failed["msg"]
    assert f"{library} >= {FLOORS[library]}" in module.failed["msg"]
