"""DockerPlatform: input checks, the load balancer it drives, planning (a retained revision reused, rollback targets)
and the end of a run, with the engine stood in for (the swap itself: test_swap.py)."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    RolloutError,
    WorkloadRef,
)


class Module:
    def __init__(self, **params):
        self.params = params
        self.check_mode = False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def platform_with(**params):
    return DockerPlatform(Module(**params), WorkloadRef("docker", "w"))


def test_invalid_workload_name_is_refused_before_anything():
    with pytest.raises(InvalidInput, match="not a valid Docker workload name"):
        DockerPlatform(Module(), WorkloadRef("docker", "bad name"))


@pytest.mark.parametrize("value", [0, -1])
def test_max_batches_below_one_is_refused(value):
    with pytest.raises(InvalidInput, match="max_batches must be 1 or more"):
        platform_with(max_batches=value)._validate_rollout_params()


def test_health_timeout_zero_is_refused():
    with pytest.raises(InvalidInput, match="health_timeout must be more than 0"):
        platform_with(health_timeout=0)._validate_rollout_params()
    with pytest.raises(InvalidInput, match="health_timeout must be zero or more"):  # the range check comes first
        platform_with(health_timeout=-5)._validate_rollout_params()


# -- the load balancer it drives -------------------------------------------------------------------------------
def test_without_a_load_balancer_the_change_is_warned_about():
    platform = platform_with(load_balancer={"type": "none"})
    platform._check_balancer()
    assert len(platform.module.warnings) == 1 and "Zero downtime needs a load balancer" in platform.module.warnings[0]


def test_a_load_balancer_that_cannot_be_driven_fails_before_anything():
    platform = platform_with(load_balancer={"type": "haproxy", "socket": "/nonexistent/zerodown/admin.sock"})
    with pytest.raises(RolloutError, match="admin.sock"):
        platform._check_balancer()
    assert platform.module.warnings == []


# -- planning ---------------------------------------------------------------------------------------------------
def container(cid, rev, image, image_id, running, env=("A=1",), created="2024-01-01T00:00:00Z"):
    labels = {"zerodown.workload": "w", "zerodown.revision": str(rev), "zerodown.image": image,
              "zerodown.change-cause": f"cause {rev}", "zerodown.created": created, "zerodown.replicas": "2",
              "zerodown.port": "8080/tcp", "team": "shop"}
    return Replica.from_attrs({
        "Id": cid, "Name": f"/w-r{rev}-{cid}", "Image": image_id,
        "Config": {"Image": image, "Env": list(env), "Labels": labels, "ExposedPorts": {"8080/tcp": {}}},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
        "State": {"Status": "running" if running else "exited", "StartedAt": f"2024-01-0{rev}T00:00:00Z",
                  "FinishedAt": "" if running else f"2024-01-0{rev}T01:00:00Z"},
    })


def planning(history, local=None, check_mode=True, **params):
    """A platform that plans on ``history`` in check mode, its engine answering ``local`` (image reference ->
    image id) for the images it has."""
    platform = platform_with(**params)
    platform.module.check_mode = check_mode
    platform.docker.load = lambda: history
    platform.docker.existing = lambda: history
    platform.docker.local_image = lambda ref: {"Id": local[ref]} if ref in (local or {}) else None
    platform.docker.image_config = lambda image_id: {}
    platform.docker.divergence = lambda history, members=None: []
    platform.docker.status = lambda history, target=None: None
    return platform


def _history(*replicas):
    return History(list(replicas))


TWO_REVISIONS = (container("a", 1, "app:1", "sha:1", False), container("b", 1, "app:1", "sha:1", False),
                 container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"),
                 container("d", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))


def test_check_mode_predicts_a_new_revision_and_the_pull():
    result = planning(_history(*TWO_REVISIONS), {"app:2": "sha:2"}).upgrade({"image": "app:3"})
    assert result.changed and (result.revision, result.previous_revision) == (3, 2)
    assert result.message == ("would upgrade Docker workload 'w' from app:2 (revision 2) to app:3 (revision 3); "
                              "app:3 would be pulled")
    assert result.after == {"revision": 3, "image": "app:3", "replicas": 2} and result.extra["partial"] is False


def test_check_mode_predicts_a_partial_upgrade():
    result = planning(_history(*TWO_REVISIONS), {"app:3": "sha:3"}, max_batches=1, batch_size=1).upgrade(
        {"image": "app:3"})
    assert result.message.endswith("(revision 3), 1 of 2 replicas in the first 1 batch(es)"), result.message
    assert result.after["replicas"] == 1 and result.extra["partial"] is True


def test_check_mode_predicts_the_restart_of_a_retained_revision():
    result = planning(_history(*TWO_REVISIONS), {"app:1": "sha:1"}).upgrade({"image": "app:1"})
    assert (result.revision, result.previous_revision) == (1, 2)
    assert "it would restart revision 1 (restarting the 2 retained container(s) of revision 1)" in result.message
    assert "no pull, no new revision" in result.message


def test_check_mode_predicts_a_scale_and_a_create_and_nothing_to_do():
    history = _history(*TWO_REVISIONS)
    result = planning(history, {"app:2": "sha:2"}, replicas=3).upgrade({"image": "app:2"})
    assert result.message == "would scale Docker workload 'w' from 2 to 3 replicas"
    result = planning(history, {"app:2": "sha:2"}).upgrade({"image": "app:2"})
    assert not result.changed and result.message == "Docker workload 'w' already runs app:2 (revision 2) with 2 replicas"
    result = planning(_history(), replicas=2).upgrade({"image": "app:2"})
    assert result.changed and result.message == "would create Docker workload 'w' with 2 replicas of app:2"


def test_a_change_outside_check_mode_takes_the_lock_first():
    platform = planning(_history(*TWO_REVISIONS), {"app:1": "sha:1"}, check_mode=False)
    asked = []
    platform.change.locked = lambda operation, target, images, action: asked.append((operation, target, images))
    platform.rollback({})
    assert asked == [("rollback", "revision 1 (app:1)", ["sha:2", "sha:1"])]


# -- rollback targets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [0, None])
def test_rollback_to_revision_zero_means_the_previous_one_as_kubectl(given):
    history = _history(container("a", 1, "app:1", "sha:1", False),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    platform = planning(history)
    platform.params["to_revision"] = given
    result = platform._plan_rollback(history)
    assert result.changed and "back from revision 2 to revision 1" in result.message, result.message


def test_rollback_to_a_negative_revision_is_refused():
    platform = platform_with()
    platform.docker.existing = lambda: pytest.fail("read the engine before refusing the input")
    with pytest.raises(InvalidInput, match="to_revision must be zero or more"):
        platform.rollback({"to_revision": -1})
