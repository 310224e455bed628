"""Old containers stopped in the background, and an upgrade to a retained revision restarting its containers,
against the real engine and HAProxy, driven through ansible-playbook."""
from __future__ import annotations

import functools

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_SLOW_V1, IMAGE_SLOW_V2, IMAGE_V1, IMAGE_V2, container_spec, module_args, run_playbook

pytestmark = pytest.mark.docker

_base = functools.partial(module_args, drain_timeout=3)


def _by_revision(containers):
    out = {}
    for c in containers():
        out.setdefault(int(c.labels["zerodown.revision"]), {})[c.id] = c
    return out


def _recorder(haproxy):
    return TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5), rate=40,
                           max_duration=300).start()


def test_old_containers_end_stopped_and_kept_and_exactly_retain_revisions(engine, haproxy, workload_name, containers,
                                                                          tmp_path):
    # the slow app ignores SIGTERM: each old container's stop lasts stop_timeout and ends with SIGKILL
    args = dict(stop_timeout=3, retain=1, batch_size=1, health_timeout=30)
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_SLOW_V1, replicas=3, docker_container=container_spec(), **args)}])
    assert not created["localhost"]["r0"].get("failed"), created
    rev1 = set(_by_revision(containers)[1])
    recorder = _recorder(haproxy)
    try:
        res = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_SLOW_V2, **args)},
        ])["localhost"]["r0"]
        after_first = _by_revision(containers)
        members_after_first = haproxy.servers()
        res2 = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, **args)},
        ])["localhost"]["r0"]
    finally:
        timeline = recorder.stop()
    assert not res.get("failed") and (res["previous_revision"], res["revision"]) == (1, 2), res
    assert res["pruned"] == [] and res["status"]["state"] == "complete", res
    assert "upgraded from revision 1" in res["msg"] and "in 3 batch(es)" in res["msg"], res["msg"]
    batches = [e["message"] for e in res["progress"] if e["message"].startswith("batch ")]
    assert [m.split(":")[0] for m in batches] == ["batch 1", "batch 2", "batch 3"], res["progress"]
    assert batches[-1].endswith("0 old one(s) left"), res["progress"]
    # every old container was stopped (killed after stop_timeout: the app ignores SIGTERM) and kept
    assert set(after_first[1]) == rev1
    for c in after_first[1].values():  # as listed right after the first upgrade
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137, (c.name, c.attrs["State"])
    assert sorted(members_after_first) == sorted(c.name for c in after_first[2].values())
    assert all(c.status == "running" for c in after_first[2].values())

    assert not res2.get("failed") and (res2["previous_revision"], res2["revision"]) == (2, 3), res2
    final = _by_revision(containers)
    # retain=1: revision 2's containers are kept (stopped), revision 1's were pruned once every stop had ended
    assert sorted(final) == [2, 3], final
    assert sorted(res2["pruned"]) == sorted(c.name for c in after_first[1].values()), res2
    assert set(final[2]) == set(after_first[2]) and all(c.status == "exited" for c in final[2].values())
    assert all(c.status == "running" for c in final[3].values()) and len(final[3]) == 3
    assert sorted(haproxy.servers().values()) == ["UP"] * 3
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])


def test_upgrade_to_a_retained_revision_restarts_its_containers(engine, haproxy, workload_name, containers, tmp_path):
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=2,
                                                 docker_container=container_spec())},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2)},
    ])["localhost"]
    assert (res["r1"]["previous_revision"], res["r1"]["revision"]) == (1, 2), res["r1"]
    before = _by_revision(containers)
    all_ids = {cid for group in before.values() for cid in group}

    back = _base(workload_name, haproxy, image=IMAGE_V1)
    recorder = _recorder(haproxy)
    try:
        res = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": back, "check_mode": True},   # r0
            {"zerodown.rollout.image_upgrade": back},                       # r1
            {"zerodown.rollout.image_upgrade": back},                       # r2: idempotent
            {"zerodown.rollout.rollout_info": {"platform": "docker", "name": workload_name}},  # r3
        ], diff=True)["localhost"]
    finally:
        timeline = recorder.stop()
    check, real, again, info = res["r0"], res["r1"], res["r2"], res["r3"]
    assert check["changed"] and not check.get("failed"), check
    assert check["revision"] == 1 and check["previous_revision"] == 2, check
    assert "would restart revision 1" in check["msg"] and "no pull, no new revision" in check["msg"], check["msg"]
    assert check["diff"]["after"]["revision"] == 1, check["diff"]

    assert real["changed"] and not real.get("failed"), real
    assert (real["previous_revision"], real["revision"]) == (2, 1), real
    assert "restarting the 2 retained container(s) of revision 1" in real["msg"], real["msg"]
    assert "revision 1 is current again" in real["msg"], real["msg"]
    after = _by_revision(containers)
    # no container was created: the very containers revision 1 ran in serve again, revision 2's are kept
    assert {cid for group in after.values() for cid in group} == all_ids
    assert set(after[1]) == set(before[1]) and all(c.status == "running" for c in after[1].values())
    assert all(c.status == "exited" for c in after[2].values())
    assert sorted(haproxy.servers()) == sorted(c.name for c in after[1].values())

    assert not again["changed"] and again["revision"] == 1, again
    assert info["revision"] == 1 and [r["revision"] for r in info["revisions"]] == [1, 2], info
    assert [r["current"] for r in info["revisions"]] == [True, False], info

    # the same way forward: revision 2 again, then a rollback goes back to what was stopped last (revision 1)
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2)},
        {"zerodown.rollout.rollback": _base(workload_name, haproxy)},
    ])["localhost"]
    assert (res["r0"]["previous_revision"], res["r0"]["revision"]) == (1, 2), res["r0"]
    assert (res["r1"]["previous_revision"], res["r1"]["revision"]) == (2, 1), res["r1"]
    assert {cid for group in _by_revision(containers).values() for cid in group} == all_ids
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
