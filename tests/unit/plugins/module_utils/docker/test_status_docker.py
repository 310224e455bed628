"""docker/status.py: the rollout status and the pool's implied members from containers and LB members, no engine."""
from __future__ import annotations

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Member, Scope
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import replicas as rp
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import LockOwner
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.status import (
    implied_intent,
    note_lock,
    rollout_status,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutStatus

SCOPE = Scope("w", "aaaaaa")


def replica(cid, rev, state="running", health="healthy", port=1000, started="2024-01-01T00:00:00Z", desired=None):
    labels = {rp.LABEL_WORKLOAD: "w", rp.LABEL_REVISION: str(rev), rp.LABEL_IMAGE: f"app:{rev}",
              rp.LABEL_PORT: "8080/tcp"}
    if desired is not None:
        labels[rp.LABEL_REPLICAS] = str(desired)
    state_doc = {"Status": state, "StartedAt": started, "FinishedAt": "" if state == "running" else started}
    if health:
        state_doc["Health"] = {"Status": health}
    ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]} if port else {}
    return rp.Replica.from_attrs({"Id": cid * 12, "Name": f"/w-r{rev}-{cid}", "Image": f"sha256:{rev}",
                                  "Config": {"Labels": labels}, "State": state_doc,
                                  "NetworkSettings": {"Ports": ports}})


def members(*entries):
    """Members by name from (container name, status) pairs, under the scope's (tagged) name."""
    return {SCOPE.name(c): Member(SCOPE.name(c), "127.0.0.1:1", status) for c, status in entries}


def test_complete_when_every_replica_of_the_current_revision_is_up_in_the_load_balancer():
    history = History([replica("a", 2), replica("b", 2), replica("c", 1, state="exited")])
    status = rollout_status(history, "w", None, members(("w-r2-a", "UP"), ("w-r2-b", "UP 1/2")), SCOPE)
    assert (status.state, status.revision, status.desired, status.updated, status.ready, status.available) == \
        ("complete", 2, 2, 2, 2, 2)
    assert status.message == "Docker workload 'w' successfully rolled out (revision 2, 2 replicas)"
    assert status.extra["image"] == "app:2" and [r["name"] for r in status.extra["replicas"]] == ["w-r2-a", "w-r2-b"]


def test_without_a_load_balancer_a_ready_replica_is_available():
    history = History([replica("a", 1), replica("b", 1, health=None)])
    status = rollout_status(history, "w")
    assert status.state == "complete" and status.available == 2


def test_a_replica_not_up_in_the_load_balancer_is_not_available():
    history = History([replica("a", 1), replica("b", 1)])
    status = rollout_status(history, "w", None, members(("w-r1-a", "UP"), ("w-r1-b", "DRAIN")), SCOPE)
    assert status.state == "progressing" and status.available == 1
    assert "1 of 2 updated replicas are available (not UP on the load balancer yet: w-r1-b)..." in status.message
    # missing from the pool altogether: the same
    assert rollout_status(history, "w", None, members(("w-r1-a", "UP")), SCOPE).available == 1


def test_a_member_under_the_untagged_name_of_earlier_versions_counts():
    history = History([replica("a", 1)])
    pool = {"w-r1-a": Member("w-r1-a", "127.0.0.1:1000", "UP")}
    assert rollout_status(history, "w", None, pool, SCOPE).available == 1


def test_other_revisions_still_running_is_progressing_with_the_replicas_the_new_one_aims_for():
    history = History([replica("a", 2, desired=3, started="2024-02-01T00:00:00Z"), replica("b", 1), replica("c", 1)])
    status = rollout_status(history, "w")
    assert status.state == "progressing" and status.revision == 2 and status.desired == 3 and status.updated == 1
    assert "1 replicas run revision 2, 2 still run revision(s) 1" in status.message


def test_an_unhealthy_replica_fails_and_no_running_replica_fails():
    history = History([replica("a", 1), replica("b", 1, health="unhealthy")])
    status = rollout_status(history, "w")
    assert (status.state, status.reason) == ("failed", "ReplicaUnhealthy") and "w-r1-b unhealthy" in status.message
    history = History([replica("a", 1, state="exited", health=None)])
    status = rollout_status(history, "w")
    assert (status.state, status.reason) == ("failed", "NoReplicaRunning")


def test_a_target_revision_is_judged_instead_of_the_current_one():
    history = History([replica("a", 2, started="2024-02-01T00:00:00Z"), replica("b", 1)])
    status = rollout_status(history, "w", target=1)
    assert status.revision == 1 and status.updated == 1 and status.state == "progressing"


def test_a_pool_out_of_step_keeps_a_done_rollout_progressing_and_says_what_differs():
    history = History([replica("a", 1)])
    status = rollout_status(history, "w", None, members(("w-r1-a", "UP")), SCOPE,
                            diverged=["HAProxy backend w: added the missing w-r1-a.aaaaaa"])
    assert (status.state, status.reason) == ("progressing", "LoadBalancerOutOfStep")
    assert status.extra["lb_divergence"] == ["HAProxy backend w: added the missing w-r1-a.aaaaaa"]
    assert "a run of image_upgrade or rollback with the same options repairs it" in status.message


def test_the_intent_is_the_members_already_in_and_the_ready_replicas_of_the_current_revision():
    history = History([
        replica("new", 2, started="2024-02-01T00:00:00Z"),                       # current, ready: in
        replica("gated", 2, health="starting", started="2024-02-01T00:00:00Z"),  # current, never gated: out
        replica("noport", 2, port=None, started="2024-02-01T00:00:00Z"),          # no address: out
        replica("stopped", 1, state="exited", health=None),                       # not running: out
    ])
    assert implied_intent(history, SCOPE, members()) == {"w-r2-new.aaaaaa": "127.0.0.1:1000"}


def test_mid_rollout_only_members_are_intended():
    # an interrupted or paused rollout: the run that goes on admits the new revision's replicas as its strategy
    # does (a steps rollout at weight 0), so a share is never given to them unjudged by a repair
    history = History([
        replica("new", 2, started="2024-02-01T00:00:00Z"),                       # current, ready, not a member: out
        replica("in", 2, started="2024-02-01T00:00:00Z"),                        # current, a member: in
        replica("old", 1),                                                        # older, a member still: in
        replica("out", 1),                                                        # older, taken out: stays out
    ])
    intent = implied_intent(history, SCOPE, members(("w-r1-old", "UP"), ("w-r2-in", "UP")))
    assert intent == {"w-r2-in.aaaaaa": "127.0.0.1:1000", "w-r1-old.aaaaaa": "127.0.0.1:1000"}


def test_a_held_lock_is_named_in_the_status():
    status = RolloutStatus(desired=1, updated=1, ready=1, available=1, revision=1, state="complete", message="done")
    owner = LockOwner(host="ctl-1", pid=42, operation="rollback", target="revision 1 (app:1)")
    note_lock(status, "zerodown-lock-w", owner.to_labels("w"))
    assert status.extra["lock"]["pid"] == 42
    assert status.message == ("done; locked by rollback to revision 1 (app:1) by pid 42 on host ctl-1 "
                              "(lock container zerodown-lock-w)")
    status = RolloutStatus(desired=1, updated=1, ready=1, available=1, revision=1, state="complete", message="done")
    note_lock(status, "zerodown-lock-w", {"something": "else"})
    assert status.extra["lock"] == {"container": "zerodown-lock-w"}
    assert status.message == "done; locked by a run (lock container zerodown-lock-w)"


def _standby(revision=1, serving=2):
    import datetime
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.standby import Standby
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    return Standby("w", revision, serving, now, now + datetime.timedelta(seconds=60))


def test_a_blue_green_standby_at_weight_0_leaves_the_rollout_complete_and_is_reported():
    history = History([replica("a", 1, started="2024-01-01T00:00:00Z"), replica("b", 2, started="2024-01-02T00:00:00Z")])
    pool = {SCOPE.name("w-r1-a"): Member(SCOPE.name("w-r1-a"), "127.0.0.1:1", "UP", weight=0),
            SCOPE.name("w-r2-b"): Member(SCOPE.name("w-r2-b"), "127.0.0.1:2", "UP", weight=1)}
    status = rollout_status(history, "w", None, pool, SCOPE, standby=_standby())
    assert status.state == "complete" and (status.revision, status.desired, status.available) == (2, 1, 1), status
    assert status.extra["standby"]["revision"] == 1 and status.extra["standby"]["replicas"] == 1
    assert "revision 1 stands by at weight 0" in status.message
    # without the record, or with a standby member still weighed (a switch that did not end): progressing
    assert rollout_status(history, "w", None, pool, SCOPE).state == "progressing"
    pool[SCOPE.name("w-r1-a")].weight = 1
    weighed = rollout_status(history, "w", None, pool, SCOPE, standby=_standby())
    assert weighed.state == "progressing" and "standby" not in weighed.extra
    # a record for another revision than the one asked about says nothing about it
    assert rollout_status(history, "w", 1, pool, SCOPE, standby=_standby()).state == "progressing"
