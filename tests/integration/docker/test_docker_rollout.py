"""Zero-downtime upgrade, rollback and failed upgrade of a Docker workload behind a real HAProxy,
under a steady load, driven through ansible-playbook."""
from __future__ import annotations

import functools
import shutil
import time

import pytest

from tests.support.docker_harness import IMAGE_BROKEN, IMAGE_V1, IMAGE_V2, WrkLoad, container_spec, module_args, run_playbook
from tests.support.under_load import assert_no_failure, running, start_recorder, upgrade_and_rollback, versions
from tests.support.unavailable import skip_or_fail

pytestmark = pytest.mark.docker

# The bulk of the load (16 connections, each pacing 40 ms between requests: 250-380 requests/s) comes from wrk; a Python
# recorder at a lower rate (under_load.RECORDER_RATE) reads the version of every answer it gets, for the version mix
# over time. Both count failures.

_base = functools.partial(module_args, drain_timeout=3)


@pytest.fixture(autouse=True)
def _wrk_available():
    if shutil.which("wrk") is None:
        skip_or_fail("wrk is not installed; run `make services`")


@pytest.mark.exclusive  # it must hold 200 requests/s: not beside another stream of tests (scripts/test.sh)
def test_create_scale_upgrade_rollback_under_load(engine, haproxy, workload_name, containers, tmp_path):
    create = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=1,
                                                 docker_container=container_spec())},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=4)},
    ])["localhost"]
    assert create["r0"]["changed"] and create["r0"]["revision"] == 1, create["r0"]
    assert create["r1"]["changed"] and create["r1"]["revision"] == 1, create["r1"]
    assert "scaled" in create["r1"]["msg"]
    v1_ids = [cid for rev, cid in running(containers) if rev == "1"]
    assert len(v1_ids) == 4
    assert sorted(haproxy.servers().values()) == ["UP"] * 4

    run = upgrade_and_rollback(tmp_path, f"{haproxy.url}/version", WrkLoad(f"{haproxy.url}/version"),
                               _base(workload_name, haproxy, image=IMAGE_V2, batch_size=2),
                               _base(workload_name, haproxy, batch_size=2), max_duration=300)
    assert not run.upgrade.get("failed"), run.upgrade
    assert (run.upgrade["previous_revision"], run.upgrade["revision"]) == (1, 2)
    assert not run.rollback.get("failed"), run.rollback
    assert (run.rollback["previous_revision"], run.rollback["revision"]) == (2, 1)

    assert_no_failure(run.load, run.timeline)
    assert run.load["requests_per_s"] >= 200, run.load["text"]
    assert versions(run.before) == {"1.0": len(run.before)}
    during_upgrade = versions(run.upgrading)
    assert set(during_upgrade) == {"1.0", "2.0"}, during_upgrade
    assert versions(run.upgraded) == {"2.0": len(run.upgraded)}
    assert set(versions(run.rolling_back)) == {"1.0", "2.0"}
    assert set(versions(run.rolled_back)) == {"1.0"}

    # the rollback restarted the very containers revision 1 ran in (no new ones, no pull)
    assert sorted(cid for rev, cid in running(containers) if rev == "1") == sorted(v1_ids)
    assert [rev for rev, _cid in running(containers)] == ["1"] * 4
    stopped_v2 = [c for c in containers() if c.labels["zerodown.revision"] == "2"]
    assert len(stopped_v2) == 4 and all(c.status == "exited" for c in stopped_v2)
    assert sorted(haproxy.servers().values()) == ["UP"] * 4


def test_broken_image_fails_and_old_replicas_keep_serving(engine, haproxy, workload_name, containers, tmp_path):
    run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=3,
                                                 docker_container=container_spec())}])
    before_ids = running(containers)
    before_lb = haproxy.servers()
    load = WrkLoad(f"{haproxy.url}/version")
    recorder = start_recorder(f"{haproxy.url}/version", max_duration=300)
    try:
        time.sleep(1.0)
        result = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_BROKEN, batch_size=2,
                                                     health_timeout=15)}])["localhost"]["r0"]
        time.sleep(1.0)
    finally:
        timeline = recorder.stop()
        load = load.stop()
    assert result.get("failed") and not result.get("changed"), result
    assert "unhealthy" in result["msg"] and IMAGE_BROKEN in result["msg"], result["msg"]
    assert result["health_log"], result  # the HEALTHCHECK's own output is quoted
    assert_no_failure(load, timeline)
    assert load["requests"] > 0 and set(timeline["summary"]["versions"]) == {"1.0"}
    assert running(containers) == before_ids
    assert [c for c in containers() if c.labels["zerodown.image"] == IMAGE_BROKEN] == []
    assert haproxy.servers() == before_lb
