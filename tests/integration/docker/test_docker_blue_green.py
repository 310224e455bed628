"""strategy=blue_green against the real engine and HAProxy, under load with every answer recorded: the switch to the
new set and the switch back (a rollback inside the standby window) as the recorder sees them, the standby running
at weight 0 with no request, no container started by the rollback, and a run after the window retiring the
standby."""
from __future__ import annotations

import functools
import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, container_of, container_spec, haproxy_command, module_args, run_playbook

pytestmark = pytest.mark.docker

_base = functools.partial(module_args, drain_timeout=2)


def _info(name: str, haproxy) -> dict:
    """rollout_info's arguments (it takes no rollout options)."""
    return {"platform": "docker", "name": name, "load_balancer": haproxy.lb_options()}


def _recorder(haproxy, rate: float = 40):
    return TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=8, timeout=5), rate=rate,
                           max_duration=300).start()


def _stat(haproxy) -> dict[str, dict[str, int]]:
    """Per container of the backend: its HAProxy weight and the requests it was sent (``stot``) so far."""
    rows = haproxy_command("show stat", haproxy.socket).splitlines()
    header = rows[0].lstrip("# ").split(",")
    out = {}
    for line in rows[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == haproxy.backend and row.get("svname") not in ("BACKEND", "FRONTEND", None):
            out[container_of(row["svname"])] = {"weight": int(row["weight"]), "sent": int(row["stot"] or 0)}
    return out


def _switch_seconds(samples, old: str, new: str) -> float:
    """How long the recorded answers show both versions: from the first answer of ``new`` to the last of ``old``
    (an answer's time is its request's start plus its latency); 0 when they do not overlap."""
    answered = sorted((s.start + (s.latency or 0.0), s.version) for s in samples if s.status == 200)
    first_new = next(t for t, version in answered if version == new)
    last_old = max(t for t, version in answered if version == old)
    assert answered[-1][1] == new, answered[-5:]
    return max(0.0, last_old - first_new)


def _by_revision(containers) -> dict[str, dict[str, tuple[str, str]]]:
    """revision -> container name -> (status, StartedAt)."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for c in containers():
        c.reload()
        out.setdefault(c.labels["zerodown.revision"], {})[c.name] = (c.status, c.attrs["State"]["StartedAt"])
    return out


def _drop_marker(engine, name: str) -> None:
    for container in engine.containers.list(all=True, filters={"name": f"zerodown-standby-{name}"}):
        container.remove(force=True)


def test_switch_standby_and_rollback_by_switching_back_under_load(
        engine, haproxy, workload_name, containers, tmp_path):
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=4, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    upgrade = {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                       strategy="blue_green", standby_seconds=600)}
    recorder = _recorder(haproxy)
    try:
        checked = run_playbook(tmp_path, [upgrade], check=True)["localhost"]["r0"]
        switched = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        phase1 = recorder.snapshot()
        stat_after_switch = _stat(haproxy)
        time.sleep(3)  # traffic goes on: the standby must get none of it
        stat_later = _stat(haproxy)
        again = run_playbook(tmp_path, [upgrade, dict(upgrade, check_mode=True),
                                        {"zerodown.rollout.rollout_info": _info(workload_name, haproxy)}])["localhost"]
        before_rollback = _by_revision(containers)
        rolled = run_playbook(tmp_path, [{"zerodown.rollout.rollback": _base(workload_name, haproxy)}])["localhost"]["r0"]
        phase2 = recorder.snapshot()[len(phase1):]
    finally:
        timeline = recorder.stop()
        _drop_marker(engine, workload_name)

    assert checked["changed"] and "blue-green" in checked["msg"], checked
    assert not switched.get("failed") and switched["changed"], switched
    assert (switched["previous_revision"], switched["revision"]) == (1, 2), switched
    assert switched["status"]["state"] == "complete", switched["status"]
    assert switched["standby"]["revision"] == 1 and switched["standby"]["expired"] is False, switched["standby"]
    # every answer after the switch comes from 2.0; both versions answered for at most a second
    assert _switch_seconds(phase1, "1.0", "2.0") <= 1.0
    # the standby: revision 1's four containers still running, at weight 0, sent no request after the switch
    revision1 = before_rollback["1"]
    assert len(revision1) == 4 and all(status == "running" for status, _start in revision1.values()), revision1
    standby_stat = {name: stat_later[name] for name in revision1}
    assert all(s["weight"] == 0 for s in standby_stat.values()), stat_later
    assert all(stat_later[n]["sent"] == stat_after_switch[n]["sent"] for n in revision1), (stat_after_switch, stat_later)
    assert sum(stat_later[n]["sent"] - stat_after_switch[n]["sent"] for n in before_rollback["2"]) > 50, stat_later
    # re-running the same task changes nothing while the standby is valid; neither does its check mode
    assert again["r0"]["changed"] is False and again["r0"]["standby"]["revision"] == 1, again["r0"]
    assert again["r1"]["changed"] is False, again["r1"]
    info = again["r2"]["status"]
    assert info["state"] == "complete" and info["revision"] == 2 and info["standby"]["revision"] == 1, info

    # the rollback switched back: revision 1 serves, started by nobody (same containers, same start times)
    assert not rolled.get("failed") and rolled["changed"], rolled
    assert (rolled["previous_revision"], rolled["revision"]) == (2, 1), rolled
    assert "no container starts" in rolled["msg"], rolled["msg"]
    after = _by_revision(containers)
    assert after["1"] == before_rollback["1"], (before_rollback["1"], after["1"])
    assert all(status == "exited" for status, _start in after["2"].values()), after["2"]
    assert _switch_seconds(phase2, "2.0", "1.0") <= 1.0
    assert sorted(haproxy.servers()) == sorted(after["1"])
    assert not engine.containers.list(all=True, filters={"name": f"zerodown-standby-{workload_name}"})
    assert timeline["summary"]["errors"] == 0, (timeline["summary"]["error_kinds"], timeline["summary"]["error_examples"])


def test_a_run_after_the_standby_window_retires_it(engine, haproxy, workload_name, containers, tmp_path):
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=2, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    upgrade = {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                       strategy="blue_green", standby_seconds=1)}
    recorder = _recorder(haproxy, rate=20)
    try:
        switched = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        time.sleep(2)  # past the standby's one second (its deadline is whole seconds, rounded up)
        res = run_playbook(tmp_path, [{"zerodown.rollout.rollout_info": _info(workload_name, haproxy)},
                                      dict(upgrade, check_mode=True), upgrade, upgrade])["localhost"]
    finally:
        timeline = recorder.stop()
        _drop_marker(engine, workload_name)
    assert not switched.get("failed") and switched["standby"]["revision"] == 1, switched
    # reported, not acted on, by rollout_info: the deadline passed and nothing has run since
    assert res["r0"]["status"]["standby"]["expired"] is True, res["r0"]["status"]
    assert res["r1"]["changed"] and "expired" in res["r1"]["msg"], res["r1"]
    retired = res["r2"]
    assert not retired.get("failed") and retired["changed"] and "retiring it" in retired["msg"], retired
    assert retired["standby"] is None and retired["status"]["state"] == "complete", retired
    assert res["r3"]["changed"] is False, res["r3"]
    by_revision = _by_revision(containers)
    # revision 1 stopped and kept, as a retained revision; only revision 2 in the load balancer
    assert sorted(s for s, _start in by_revision["1"].values()) == ["exited", "exited"], by_revision
    assert sorted(haproxy.servers()) == sorted(by_revision["2"])
    assert not engine.containers.list(all=True, filters={"name": f"zerodown-standby-{workload_name}"})
    assert timeline["summary"]["errors"] == 0, (timeline["summary"]["error_kinds"], timeline["summary"]["error_examples"])
