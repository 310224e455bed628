from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    Deadline,
    Finding,
    InvalidInput,
    Platform,
    RolloutStatus,
    WorkloadRef,
    check_non_negative,
    check_positive,
    parse_image_reference,
)


@pytest.mark.parametrize(
    "ref, repo, tag, digest",
    [
        ("nginx", "nginx", None, None),
        ("zerodown/demo-app:2.0", "zerodown/demo-app", "2.0", None),
        ("registry.example.org:5000/team/app:v1.2.3-rc1", "registry.example.org:5000/team/app", "v1.2.3-rc1", None),
        ("localhost/app@sha256:" + "a" * 64, "localhost/app", None, "sha256:" + "a" * 64),
        ("app:1.0@sha256:" + "b" * 64, "app", "1.0", "sha256:" + "b" * 64),
    ],
)
def test_parse_valid_image_references(ref, repo, tag, digest):
    parsed = parse_image_reference(ref)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repo, tag, digest)
    assert str(parsed) == ref


@pytest.mark.parametrize("ref", ["", "   ", "team/App:1", "app:", "app:tag with space", "app::1", ":1.0", "app@sha256:xyz", None, 3])
def test_parse_invalid_image_references_name_the_option(ref):
    with pytest.raises(InvalidInput) as exc:
        parse_image_reference(ref, option="image")
    assert "image" in exc.value.msg


def test_version_prefers_tag_then_digest():
    assert parse_image_reference("a/b:2.0").version == "2.0"
    assert parse_image_reference("a/b@sha256:" + "c" * 64).version == "sha256:" + "c" * 64


def test_deadline_with_fake_clock():
    now = [100.0]
    d = Deadline(5, clock=lambda: now[0])
    assert not d.expired and d.remaining == 5
    now[0] = 104.0
    assert d.remaining == pytest.approx(1.0) and not d.expired
    now[0] = 105.0
    assert d.expired and d.remaining == 0
    assert Deadline(None, clock=lambda: now[0]).remaining == float("inf")


def test_numeric_checks():
    check_non_negative({"a": 0, "b": None}, "a", "b")
    with pytest.raises(InvalidInput, match="drain_timeout must be zero or more"):
        check_non_negative({"drain_timeout": -1}, "drain_timeout")
    with pytest.raises(InvalidInput, match="batch_size must be 1 or more, got 0"):
        check_positive({"batch_size": 0}, "batch_size")


def test_action_result_diff_only_when_asked():
    wl = WorkloadRef("docker", "shop")
    status = RolloutStatus(3, 3, 3, 3, 2, "complete", "rolled out")
    res = ActionResult(True, wl, revision=2, previous_revision=1, status=status,
                       before={"image": "a:1"}, after={"image": "a:2"})
    out = res.to_module_result(diff=True)
    assert out["diff"] == {"before": {"image": "a:1"}, "after": {"image": "a:2"}}
    assert out["status"]["done"] is True and out["workload"]["name"] == "shop"
    assert "diff" not in res.to_module_result(diff=False)


def test_workload_describe():
    assert WorkloadRef("kubernetes", "web", "StatefulSet", "prod").describe() == "StatefulSet prod/web"
    assert WorkloadRef("docker", "web").describe() == "Docker workload 'web'"


class Linted(Platform):
    """A platform whose preflight finds one error and one warning, and records that it ran."""

    checks = ("health-gate", "replicas")

    def __init__(self):
        super().__init__(None, WorkloadRef("docker", "web"))
        self.ran = 0

    def preflight(self, params):
        self.ran += 1
        return [Finding("health-gate", "error", "no health check"), Finding("replicas", "warning", "1 replica")]


def test_lint_leaves_out_the_skipped_checks_on_any_platform():
    platform = Linted()
    assert [f.check for f in platform.lint({"skip": []})] == ["health-gate", "replicas"]
    assert [f.check for f in platform.lint({"skip": ["replicas"]})] == ["health-gate"]
    assert platform.lint({"skip": ["replicas", "health-gate"]}) == []


def test_lint_refuses_a_check_the_platform_does_not_have_before_reading_anything():
    platform = Linted()
    with pytest.raises(InvalidInput) as err:
        platform.lint({"skip": ["single_replica"]})  # a Kubernetes check's name on Docker
    assert err.value.msg == ("skip: unknown check(s) single_replica; the checks of platform=docker are "
                             "health-gate, replicas")
    assert platform.ran == 0
