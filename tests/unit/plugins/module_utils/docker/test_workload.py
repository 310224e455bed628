"""docker/workload.py: the workload as found on a (stand-in) engine: reading, the engine's tag in member names,
the null driver without a load balancer, the status and the wait."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import engine_tag
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload import DockerWorkload
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    RolloutFailed,
    WorkloadNotFound,
    WorkloadRef,
)


def attrs(cid, rev, status="running", started="2024-01-01T00:00:00Z"):
    return {"Id": cid, "Name": f"/w-r{rev}-{cid}", "Image": f"sha:{rev}",
            "Config": {"Labels": {"zerodown.workload": "w", "zerodown.revision": str(rev),
                                  "zerodown.image": f"app:{rev}"}},
            "State": {"Status": status, "StartedAt": started, "Health": {"Status": "healthy"}}}


class Engine:
    """Stands for DockerEngine: the workload's containers by id; ``gone`` are listed but removed before their
    inspect."""

    def __init__(self, *containers, gone=(), info=None):
        self.by_id = {c["Id"]: c for c in containers}
        self.gone = list(gone)
        self._info = info if info is not None else {"ID": "ABCD", "Name": "host-1", "DockerRootDir": "/var/lib/docker"}
        self.asked = []

    def containers(self, label):
        self.asked.append(("containers", label))
        return [{"Id": cid} for cid in list(self.by_id) + self.gone]

    def inspect_container(self, ref, what=""):
        if ref not in self.by_id:
            raise EngineNotFound(f"the Docker engine found nothing to inspect container {ref}")
        return self.by_id[ref]

    def info(self):
        self.asked.append(("info",))
        return self._info


def workload_on(engine, **params):
    docker = DockerWorkload(WorkloadRef("docker", "w"), params, lambda argv: (0, "", ""))
    docker._engine = engine
    return docker


def test_load_reads_the_labelled_containers_and_skips_one_removed_meanwhile():
    engine = Engine(attrs("a", 1), gone=["b"])
    history = workload_on(engine).load()
    assert [r.name for r in history.replicas] == ["w-r1-a"]
    assert engine.asked == [("containers", "zerodown.workload=w")]


def test_a_workload_that_must_exist_and_does_not_says_how_to_create_it():
    with pytest.raises(WorkloadNotFound) as err:
        workload_on(Engine()).existing()
    assert "does not exist on the default Docker engine" in err.value.msg and "image_upgrade" in err.value.msg


@pytest.mark.parametrize("spec", [None, {"type": "none"}, {"type": "none", "socket": "/run/haproxy.sock"}])
def test_without_a_load_balancer_the_null_driver_is_driven(spec):
    docker = workload_on(Engine(), load_balancer=spec)
    assert docker.balancer.kind == "none" and not docker.balancer.routes


def test_without_a_load_balancer_no_member_is_named_so_the_engine_identity_is_never_read():
    engine = Engine(attrs("a", 1))
    docker = workload_on(engine)
    history = docker.load()
    docker.begin_changes(history)
    docker.repair(last=True)
    status = docker.status(history)
    assert status.state == "complete" and status.available == 1
    assert docker.divergence(history) == [] and docker.fixes == []
    assert ("info",) not in engine.asked


def test_members_are_named_with_the_engine_tag_read_once():
    engine = Engine()
    docker = workload_on(engine)
    history = docker.load()
    tag = engine_tag("ABCD|host-1|/var/lib/docker")
    assert docker.scope(history).name("w-r1-a") == f"w-r1-a.{tag}"
    docker.scope(history)
    assert engine.asked.count(("info",)) == 1
    # an engine that tells nothing of itself: the tag comes from its address as written
    silent = workload_on(Engine(info={}), docker_host="tcp://10.0.0.1:2376")
    assert silent.scope(history).tag == engine_tag("tcp://10.0.0.1:2376")


def test_the_wait_fails_at_once_when_another_revision_runs():
    engine = Engine(attrs("a", 1, status="exited"), attrs("b", 2))
    with pytest.raises(RolloutFailed, match="runs revision 2, not revision 1: it was rolled back or upgraded again"):
        workload_on(engine).wait(1, 30)
    assert workload_on(engine).wait(2, 0).state == "complete"
