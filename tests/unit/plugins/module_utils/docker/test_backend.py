"""DockerPlatform: input checks, planning (rollback targets) and the end of a run, with the engine stood in for
(the swap itself: test_swap.py)."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    RolloutStatus,
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


class Planning(DockerPlatform):
    def __init__(self):
        super().__init__(Module(), WorkloadRef("docker", "w"))


def _history(*replicas):
    return History(list(replicas))


# -- the end of a run: waiting for the new revision -----------------------------------------------------------
class Finishing(DockerPlatform):
    """``_finish`` over a history whose revision 2 is not done yet; records the timeout it waits with."""

    def __init__(self, **params):
        super().__init__(Module(**params), WorkloadRef("docker", "w"))
        self.waited = []

    def load(self):
        return _history(container("c", 2, "app:2", "sha:2", True))

    def _status(self, history, target=None):
        return RolloutStatus(desired=1, updated=1, ready=0, available=0, revision=2, state="Progressing",
                             message="waiting")

    def wait(self, revision, timeout, progress=None):
        self.waited.append((revision, timeout))
        return self._status(self.load(), revision)


def test_progress_has_each_batch_then_the_final_wait():
    finishing = Finishing(retain=5)
    finishing._progress.note("batch 1: 1 of 1 new replica(s) healthy, 0 old one(s) left")

    def wait(revision, timeout, progress=None):  # the final wait reports its statuses through progress
        progress(finishing._status(None))
        progress(finishing._status(None))  # the same message again: kept once
        return finishing._status(None)
    finishing.wait = wait
    result = finishing._finish(2, 1, {"image": "app:1"}, "upgraded")
    assert [e["message"] for e in result.extra["progress"]] == [
        "batch 1: 1 of 1 new replica(s) healthy, 0 old one(s) left", "waiting"]


@pytest.mark.parametrize("given, waited", [(0, 0.0), (7, 7.0), (None, 300.0)])
def test_wait_timeout_is_honoured_zero_included(given, waited):
    platform = Finishing(wait_timeout=given, retain=5)
    platform._finish(2, 1, {"image": "app:1"}, "upgraded")
    assert platform.waited == [(2, waited)]


@pytest.mark.parametrize("given", [0, None])
def test_rollback_to_revision_zero_means_the_previous_one_as_kubectl(given):
    history = _history(container("a", 1, "app:1", "sha:1", False),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    platform = Planning()
    platform.module.check_mode = True
    platform.params["to_revision"] = given
    result = platform._plan_rollback(history)
    assert result.changed and "back from revision 2 to revision 1" in result.message, result.message


def test_rollback_to_a_negative_revision_is_refused():
    platform = Planning()
    platform._existing = lambda: pytest.fail("read the engine before refusing the input")
    with pytest.raises(InvalidInput, match="to_revision must be zero or more"):
        platform.rollback({"to_revision": -1})
