"""A Compose service (a real docker-compose, Debian 12's 1.29) behind a real HAProxy: upgraded start-first under load
with no failed request, `docker-compose ps` listing the new containers, rolled back, and `docker-compose down`
removing everything; a service that does not exist, one without a published port, and one without a load balancer
refused with nothing changed."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, RUN_ID, TEST_LABEL, WrkLoad, module_args, run_playbook

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.docker

_base = functools.partial(module_args, drain_timeout=3)


def _missing(what):
    message = f"{what} is not installed; run `make services`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def compose(engine, tmp_path):
    """A Compose project in a temporary directory: ``web`` (3 replicas, published on 127.0.0.1 with ephemeral host
    ports) and ``worker`` (no published port). ``compose(*args)`` runs docker-compose on it."""
    for tool in ("docker-compose", "wrk"):
        if shutil.which(tool) is None:
            _missing(tool)
    project = f"zdc{uuid.uuid4().hex[:6]}"
    folder = tmp_path / project
    folder.mkdir()
    service = {"image": IMAGE_V1, "labels": {TEST_LABEL: RUN_ID}, "restart": "unless-stopped",
               "environment": {"GREETING": "hello"}}
    (folder / "docker-compose.yml").write_text(yaml.safe_dump({"version": "2.4", "services": {
        "web": dict(service, scale=3, ports=["127.0.0.1::8080"]),
        "worker": dict(service),
    }}))

    def run(*args, check=True):
        proc = subprocess.run(["docker-compose", "-p", project, *args], cwd=folder, capture_output=True, text=True,
                              timeout=120, check=False)
        if check and proc.returncode:
            raise AssertionError(f"docker-compose {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
        return proc.stdout
    run.project = project
    run("up", "-d")
    yield run
    run("down", "--volumes", check=False)
    for container in engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
        container.remove(force=True, v=True)


def _service(engine, project, service="web", running=None):
    found = engine.containers.list(all=True, filters={"label": [f"com.docker.compose.project={project}",
                                                                f"com.docker.compose.service={service}"]})
    return [c for c in found if running is None or (c.status == "running") == running]


def _recorder(haproxy):
    return TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5),
                           rate=60, max_duration=300).start()


@pytest.mark.exclusive
def test_compose_service_upgraded_and_rolled_back_under_load(engine, haproxy, workload_name, containers, compose,
                                                             tmp_path):
    project = compose.project
    old = sorted(_service(engine, project), key=lambda c: c.name)
    assert [c.name for c in old] == [f"{project}_web_{n}" for n in (1, 2, 3)]
    svc = {"compose_project": project, "compose_service": "web"}
    admit = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, **svc)},
    ])["localhost"]["r0"]
    # what the run said, as one string: pytest cuts the repr of a long tuple in the middle, where the cause of a
    # missing member is
    assert admit["changed"] and sorted(haproxy.servers()) == [c.name for c in old], (
        "\n".join(map(str, (admit.get("msg"), admit.get("warnings"), admit.get("lb_repaired"), haproxy.servers(), admit))))

    load = WrkLoad(f"{haproxy.url}/version", delay_ms=60)
    recorder = _recorder(haproxy)
    try:
        time.sleep(1.5)
        upgrade = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, **svc)},
        ])["localhost"]["r0"]
        time.sleep(1.0)
        ps_upgraded = compose("ps")
        new = sorted(_service(engine, project, running=True), key=lambda c: c.name)
        rollback = run_playbook(tmp_path, [
            {"zerodown.rollout.rollback": _base(workload_name, haproxy, **svc)},
            {"zerodown.rollout.rollout_info": {"platform": "docker", "name": workload_name,
                                               "load_balancer": haproxy.lb_options()}},
        ])["localhost"]
        ps_rolled_back = compose("ps")
        running_rolled_back = sorted(c.name for c in _service(engine, project, running=True))
        members_rolled_back = sorted(haproxy.servers())
        # docs/docker.md: after a rollback, an unchanged `up` only removes the stopped containers (the new ones)
        compose("up", "-d")
        after_up = sorted(c.id for c in _service(engine, project))
        # docs/docker.md: with retain 0 no stopped container is left, and an unchanged `up` does nothing
        again = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, retain=0, **svc)},
        ])["localhost"]["r0"]
        upgraded_again = sorted(c.id for c in _service(engine, project))
        compose("up", "-d")
        time.sleep(1.0)
    finally:
        timeline = recorder.stop()
        load = load.stop()
    assert not upgrade.get("failed") and (upgrade["previous_revision"], upgrade["revision"]) == (1, 2), upgrade
    back, info = rollback["r0"], rollback["r1"]
    assert not back.get("failed") and (back["previous_revision"], back["revision"]) == (2, 1), back
    assert {r["revision"]: (r["current"], r["replicas"]) for r in info["revisions"]} == {1: (True, 3), 2: (False, 0)}
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
    assert load["socket_errors"] == 0 and load["non_2xx_3xx"] == 0, load["text"]
    assert load["requests_per_s"] >= 100, load["text"]
    assert set(summary["versions"]) == {"1.0", "2.0"}

    # the new containers were Compose's: numbered after the old ones, named as Compose names them, listed by ps
    assert [c.name for c in new] == [f"{project}_web_{n}" for n in (4, 5, 6)]
    for c in new:
        assert c.name in ps_upgraded
        labels = c.labels
        assert labels["com.docker.compose.service"] == "web" and labels["com.docker.compose.oneoff"] == "False"
        assert labels["zerodown.workload"] == workload_name and labels["zerodown.revision"] == "2"
        assert labels["com.docker.compose.config-hash"] == old[0].labels["com.docker.compose.config-hash"]
        assert c.attrs["Config"]["Image"] == IMAGE_V2 and "GREETING=hello" in c.attrs["Config"]["Env"]
        assert f"{project}_default" in c.attrs["NetworkSettings"]["Networks"]
    # after the rollback the old ones serve again and the new ones are kept, stopped
    assert running_rolled_back == members_rolled_back == [c.name for c in old]
    assert all(c.name in ps_rolled_back for c in old + new), ps_rolled_back
    assert after_up == sorted(c.id for c in old)

    assert not again.get("failed") and again["revision"] == 2 and again["pruned"], again
    assert len(upgraded_again) == 3 and not set(upgraded_again) & set(after_up)
    running = _service(engine, project, running=True)
    assert sorted(c.id for c in _service(engine, project)) == upgraded_again and len(running) == 3
    assert all(c.attrs["Config"]["Image"] == IMAGE_V2 for c in running)
    assert sorted(haproxy.servers()) == sorted(c.name for c in running)

    compose("down")
    assert engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}) == []
    assert containers() == []


def test_compose_inputs_that_cannot_work_are_refused(engine, haproxy, workload_name, containers, compose, tmp_path):
    project = compose.project
    before = {c.id: c.status for c in engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"})}
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, compose_project=project,
                                                 compose_service="nosuch")},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, compose_project=project,
                                                 compose_service="worker")},
        {"zerodown.rollout.image_upgrade": {"platform": "docker", "name": workload_name, "image": IMAGE_V2,
                                            "compose_project": project, "compose_service": "web"}},
        {"zerodown.rollout.rollback": _base(workload_name, haproxy, compose_project=project)},
    ])["localhost"]
    expect = {"r0": f"Compose service 'nosuch' of project '{project}' does not exist",
              "r1": "publish no port",
              "r2": "needs a load_balancer",
              "r3": "compose_project and compose_service go together"}
    for key, says in expect.items():
        assert res[key].get("failed") and not res[key].get("changed"), res[key]
        assert says in res[key]["msg"], res[key]["msg"]
    after = {c.id: c.status for c in engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"})}
    assert after == before and containers() == [] and haproxy.servers() == {}
