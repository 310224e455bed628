"""strategy=steps against the real engine and HAProxy: the share each step gives (counted over 1,000 requests),
pause and continue, a failing release caught by the first step's analysis, and a rollback from a paused step,
all under load with the failed requests counted."""
from __future__ import annotations

import functools
import pathlib
import threading
import time

import pytest
import requests

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.analysis_oracle import assert_failure_names_its_thresholds
from tests.support.docker_harness import IMAGE_FLAKY, IMAGE_V1, IMAGE_V2, container_spec, module_args, run_playbook

pytestmark = pytest.mark.docker

_base = functools.partial(module_args, drain_timeout=2, batch_size=2)
# weights only (no duration): each pause ends the run, the same task run again goes on after it
PAUSED_STEPS = [{"weight": 0}, {"pause": True}, {"weight": 10}, {"pause": True}, {"weight": 50}, {"pause": True}]


def _count_versions(url: str, requests_count: int = 1000) -> dict[str, int]:
    """The versions of ``requests_count`` answers through the load balancer (one keep-alive connection)."""
    seen: dict[str, int] = {}
    with requests.Session() as session:
        for _index in range(requests_count):
            answer = session.get(url, timeout=5)
            key = answer.json()["version"] if answer.status_code == 200 else f"HTTP {answer.status_code}"
            seen[key] = seen.get(key, 0) + 1
    return seen


def _recorder(haproxy, path: str = "/version", rate: float = 40):
    return TrafficRecorder(SamplerConfig(url=f"{haproxy.url}{path}", concurrency=8, timeout=5), rate=rate,
                           max_duration=300).start()


def _running_by_revision(containers):
    out: dict[int, list] = {}
    for c in containers():
        if c.status == "running":
            out.setdefault(int(c.labels["zerodown.revision"]), []).append(c)
    return out


def test_each_step_gives_its_share_and_a_re_run_goes_on_after_the_pause(
        engine, haproxy, workload_name, containers, tmp_path):
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=4, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    upgrade = {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, strategy="steps",
                                                       steps=PAUSED_STEPS)}
    recorder = _recorder(haproxy)
    shares = []
    results = []
    try:
        for _run in range(3):
            res = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
            results.append(res)
            shares.append(_count_versions(f"{haproxy.url}/version"))
        check = run_playbook(tmp_path, [upgrade], check=True)["localhost"]["r0"]
        final = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        again = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        after = _count_versions(f"{haproxy.url}/version", 200)
    finally:
        timeline = recorder.stop()

    for res, paused_at in zip(results, (2, 4, 6)):
        assert not res.get("failed") and res["changed"], res
        assert res["partial"] is True and res["status"]["state"] == "progressing", res
        assert f"paused at step {paused_at} of 7" in res["msg"], res["msg"]
        assert (res["previous_revision"], res["revision"]) == (1, 2), res
    # weight 0 gets no request; 10 % and 50 % within 3 points over 1,000 requests each
    assert shares[0] == {"1.0": 1000}, shares
    assert abs(shares[1].get("2.0", 0) / 10 - 10) <= 3 and sum(shares[1].values()) == 1000, shares
    assert abs(shares[2].get("2.0", 0) / 10 - 50) <= 3 and sum(shares[2].values()) == 1000, shares
    # a re-run went on from where the pool was: the second run's first step is step 3 (10 %), not step 1
    assert [r["step"] for r in results[1]["steps"]] == [3, 4], results[1]["steps"]
    assert check["changed"] and "would go on from step 7" in check["msg"], check
    assert not final.get("failed") and final["changed"] and final["partial"] is False, final
    assert final["status"]["state"] == "complete", final
    assert again["changed"] is False and again["partial"] is False, again
    assert after == {"2.0": 200}
    running = _running_by_revision(containers)
    assert sorted(running) == [2] and len(running[2]) == 4, running
    # the old revision was taken out and kept (stopped), and the servers file carries no weight any more
    assert sum(1 for c in containers() if c.labels["zerodown.revision"] == "1" and c.status == "exited") == 4
    assert sorted(haproxy.servers()) == sorted(c.name for c in running[2])
    assert " weight " not in pathlib.Path(haproxy.servers_file).read_text()
    assert timeline["summary"]["errors"] == 0, (timeline["summary"]["error_kinds"], timeline["summary"]["error_examples"])


def test_a_failing_release_is_caught_by_the_first_step_and_the_old_revision_serves_all_again(
        engine, haproxy, workload_name, containers, tmp_path):
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=4, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    v1 = sorted(c.name for c in _running_by_revision(containers)[1])
    recorder = _recorder(haproxy, "/cgi-bin/version", rate=100)
    try:
        res = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
            workload_name, haproxy, image=IMAGE_FLAKY, strategy="steps",
            steps=[{"weight": 10, "duration": 60}, {"weight": 50, "duration": 60}],
            analysis={"max_error_rate": 0.05, "min_requests": 20})}])["localhost"]["r0"]
        after = _count_versions(f"{haproxy.url}/cgi-bin/version", 200)
    finally:
        timeline = recorder.stop()
    assert res.get("failed"), res
    assert "step 1 (10 % for 60s)" in res["msg"], res["msg"]
    verdict = res["analysis"]
    assert_failure_names_its_thresholds(res["msg"], verdict, max_error_rate=0.05, min_requests=20)
    assert verdict["verdict"] == "fail" and verdict["new"]["responses_5xx"] > 0, verdict
    assert verdict["new"]["requests"] >= 20 and verdict["baseline"]["responses_5xx"] == 0, verdict
    # caught well before the step's 60 s ended
    assert res["steps"][0]["held"] < 30, res["steps"]
    assert res["revision"] == 1, res
    # the old revision serves everything again, at its default weight; the flaky containers are gone
    assert after == {"1.0": 200}
    assert sorted(haproxy.servers()) == v1
    assert " weight " not in pathlib.Path(haproxy.servers_file).read_text()
    assert not [c for c in containers() if c.labels["zerodown.revision"] != "1"], [c.name for c in containers()]
    # every failed user request was a 500 of the flaky release while it had its 10 %
    summary = timeline["summary"]
    assert summary["errors"] == 0 or set(summary["error_kinds"]) == {"status"}, summary["error_kinds"]


def test_a_blue_green_standby_gets_no_share_of_a_steps_rollout(engine, haproxy, workload_name, containers, tmp_path):
    """A blue-green switch left revision 1 standing by at weight 0 for revision 2; a steps rollout to a new image
    then shares the requests between revision 2 and the new one only. Revision 1's standby is retired before the
    first step (it would otherwise get its part of the old side's share and answer 1.0 again)."""
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=2, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    switched = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V2, strategy="blue_green", standby_seconds=600)}])["localhost"]["r0"]
    assert switched["standby"]["revision"] == 1, switched
    steps = {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_FLAKY, strategy="steps",
                                                     steps=[{"weight": 50}, {"pause": True}])}
    marker = {"name": f"zerodown-standby-{workload_name}"}
    try:
        before_check = sorted(c.name for c in containers())
        checked = run_playbook(tmp_path, [steps], check=True)["localhost"]["r0"]
        after_check = sorted(c.name for c in containers())
        paused = run_playbook(tmp_path, [steps])["localhost"]["r0"]
        seen = _count_versions(f"{haproxy.url}/version", 200)
        by_revision = _running_by_revision(containers)
        markers_left = engine.containers.list(all=True, filters=marker)
    finally:
        for left in engine.containers.list(all=True, filters=marker):
            left.remove(force=True)
    assert "then revision 1 (the blue-green standby) would be retired" in checked["msg"], checked["msg"]
    assert after_check == before_check  # check mode started and stopped nothing
    assert not paused.get("failed") and paused["partial"] is True, paused
    assert "retired 2 replica(s) of revision 1 (the blue-green standby), taking no request" in " ".join(
        e["message"] for e in paused["progress"]), paused["progress"]
    # the share: revision 2 and the new one, about half each; never the standby's 1.0
    assert set(seen) == {"2.0", "2.2"} and min(seen.values()) >= 50, seen
    assert sorted(by_revision) == [2, 3], {rev: [c.name for c in reps] for rev, reps in by_revision.items()}
    assert sorted(haproxy.servers()) == sorted(c.name for reps in by_revision.values() for c in reps)
    # the standby was retired as a rolling upgrade retires a revision: stopped and kept; its record is gone
    revision1 = [c for c in containers() if c.labels["zerodown.revision"] == "1"]
    assert len(revision1) == 2 and all(c.status == "exited" for c in revision1), [(c.name, c.status) for c in revision1]
    assert markers_left == []


def test_rollback_from_a_paused_step_takes_the_new_revision_out_under_load(
        engine, haproxy, workload_name, containers, tmp_path):
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=3, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    recorder = _recorder(haproxy)
    try:
        res = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, strategy="steps",
                                                     steps=[{"weight": 50}, {"pause": True}])},
            {"zerodown.rollout.rollback": _base(workload_name, haproxy)},
        ])["localhost"]
        after = _count_versions(f"{haproxy.url}/version", 200)
        running = _running_by_revision(containers)
        members = haproxy.servers()
        servers_file = pathlib.Path(haproxy.servers_file).read_text()
        res["r2"] = run_playbook(tmp_path, [{"zerodown.rollout.rollback": _base(workload_name, haproxy)}])["localhost"]["r0"]
    finally:
        timeline = recorder.stop()
    assert res["r0"]["partial"] is True, res["r0"]
    assert not res["r1"].get("failed") and res["r1"]["changed"], res["r1"]
    assert (res["r1"]["previous_revision"], res["r1"]["revision"]) == (2, 1), res["r1"]
    assert res["r1"]["status"]["state"] == "complete", res["r1"]
    assert after == {"1.0": 200}
    assert sorted(running) == [1] and len(running[1]) == 3, running
    # the running revision-1 containers were kept (no restart, no new container): the same three as created
    assert {c.id for c in running[1]} == {c.id for c in containers() if c.labels["zerodown.revision"] == "1"}
    assert sorted(members) == sorted(c.name for c in running[1])
    assert " weight " not in servers_file
    # a second rollback goes back to revision 2, its three stopped containers restarted (kubectl's undo toggles)
    assert not res["r2"].get("failed") and (res["r2"]["previous_revision"], res["r2"]["revision"]) == (1, 2), res["r2"]
    assert sorted(_running_by_revision(containers)) == [2]
    assert timeline["summary"]["errors"] == 0, (timeline["summary"]["error_kinds"], timeline["summary"]["error_examples"])


def test_weights_a_paused_step_and_the_analysis_survive_haproxy_reloads(
        engine, haproxy, workload_name, containers, tmp_path):
    """HAProxy reloaded while a rollout is paused at a share, and while a step holds with its analysis: the share is
    the step's after each reload (1,000 requests), a re-run goes on from the paused step, the analysis is not fooled
    by the counters a reload restarts, and no request fails."""
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V1, replicas=4, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    steps = [{"weight": 20}, {"pause": True}, {"weight": 60, "duration": 8}, {"weight": 100}]
    upgrade = {"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V2, strategy="steps", steps=steps,
        analysis={"max_error_rate": 0.05, "min_requests": 10, "interval": 1, "on_inconclusive": "fail"})}
    recorder = _recorder(haproxy)
    reloads_in_step: list[float] = []
    try:
        paused = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        haproxy.reload()
        haproxy.reload()
        share_after_reloads = _count_versions(f"{haproxy.url}/version")

        def _reload_during_the_step() -> None:
            # two reloads while step 3 holds (it starts once the run has started up, about 2-4 s in)
            started = time.monotonic()
            for at in (4.0, 7.0):
                time.sleep(max(0.0, at - (time.monotonic() - started)))
                haproxy.reload()
                reloads_in_step.append(round(time.monotonic() - started, 1))

        reloader = threading.Thread(target=_reload_during_the_step, daemon=True)
        reloader.start()
        final = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        reloader.join(30)
        haproxy.reload()
        after = _count_versions(f"{haproxy.url}/version", 200)
    finally:
        timeline = recorder.stop()
    assert not paused.get("failed") and paused["partial"] is True, paused
    # the weights came back from the servers file each time: 20 % within 3 points
    assert abs(share_after_reloads.get("2.0", 0) / 10 - 20) <= 3 and sum(share_after_reloads.values()) == 1000, \
        share_after_reloads
    assert len(reloads_in_step) == 2, reloads_in_step
    # the re-run went on from the paused share (step 3), judged step 3 through the reloads, and finished
    assert not final.get("failed") and final["partial"] is False, (reloads_in_step, final)
    assert [s["step"] for s in final["steps"]] == [3, 4], final["steps"]
    assert final["steps"][0]["analysis"]["verdict"] == "pass", final["steps"][0]
    assert final["status"]["state"] == "complete", final
    assert after == {"2.0": 200}
    running = _running_by_revision(containers)
    assert sorted(running) == [2] and len(running[2]) == 4, running
    assert sorted(haproxy.servers()) == sorted(c.name for c in running[2])
    assert " weight " not in pathlib.Path(haproxy.servers_file).read_text()
    assert timeline["summary"]["errors"] == 0, (timeline["summary"]["error_kinds"], timeline["summary"]["error_examples"],
                                                haproxy.failed_requests()[-10:])
