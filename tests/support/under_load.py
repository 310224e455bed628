"""An upgrade and a rollback of a Docker workload while it serves: the load (wrk) and a recorder that reads the
version of every answer it gets, cut into the phases of the run, for the integration tests that must show zero
failed requests and the version mix moving from one revision to the other and back."""
from __future__ import annotations

import dataclasses
import pathlib
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import WrkLoad, run_playbook

# the recorder's rate: the bulk of the load comes from wrk; the recorder reads the version of each answer
RECORDER_RATE = 60
# seconds of steady traffic before the upgrade, between the upgrade and the rollback, and after
STEADY = 1.5
# samples skipped at the start of the phases after a change: a request sent just before the playbook returned (or
# that a reload's old worker finished) may still come from the revision before
SETTLING_SAMPLES = 10


def versions(samples: t.Iterable[t.Any]) -> dict[str, int]:
    """How many of ``samples`` each version answered."""
    out: dict[str, int] = {}
    for sample in samples:
        out[sample.version] = out.get(sample.version, 0) + 1
    return out


def running(containers: t.Callable[..., t.Any]) -> list[tuple[str, str]]:
    """(revision, container id) of the workload's running containers, sorted."""
    return sorted((c.labels["zerodown.revision"], c.id) for c in containers(all=False))


def start_recorder(url: str, max_duration: float) -> TrafficRecorder:
    return TrafficRecorder(SamplerConfig(url=url, concurrency=4, timeout=5), rate=RECORDER_RATE,
                           max_duration=max_duration).start()


def assert_no_failure(load: dict[str, t.Any], timeline: dict[str, t.Any]) -> None:
    """Neither the recorder nor wrk saw a failed request."""
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
    assert load["socket_errors"] == 0 and load["non_2xx_3xx"] == 0, load["text"]


@dataclasses.dataclass
class UpgradeAndRollback:
    """The two task results, wrk's and the recorder's summaries, and the recorder's samples by phase."""

    upgrade: dict[str, t.Any]
    rollback: dict[str, t.Any]
    load: dict[str, t.Any]
    timeline: dict[str, t.Any]
    before: list[t.Any]
    upgrading: list[t.Any]
    upgraded: list[t.Any]
    rolling_back: list[t.Any]
    rolled_back: list[t.Any]


def upgrade_and_rollback(tmp_path: pathlib.Path, url: str, load: WrkLoad, upgrade: dict[str, t.Any],
                         rollback: dict[str, t.Any], max_duration: float) -> UpgradeAndRollback:
    """Run the ``upgrade`` task (image_upgrade's arguments), then the ``rollback`` task, while ``load`` runs and a
    recorder samples ``url``; stops both whatever happens."""
    recorder = start_recorder(url, max_duration)
    try:
        time.sleep(STEADY)
        mark_upgrade = len(recorder.snapshot())
        upgraded = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": upgrade}])["localhost"]["r0"]
        mark_upgraded = len(recorder.snapshot())
        time.sleep(STEADY)
        mark_rollback = len(recorder.snapshot())
        rolled_back = run_playbook(tmp_path, [{"zerodown.rollout.rollback": rollback}])["localhost"]["r0"]
        mark_rolled_back = len(recorder.snapshot())
        time.sleep(STEADY)
    finally:
        timeline = recorder.stop()
        summary = load.stop()
    snap = recorder.snapshot()
    return UpgradeAndRollback(
        upgrade=upgraded, rollback=rolled_back, load=summary, timeline=timeline,
        before=snap[:mark_upgrade], upgrading=snap[mark_upgrade:mark_upgraded],
        upgraded=snap[mark_upgraded + SETTLING_SAMPLES:mark_rollback], rolling_back=snap[mark_rollback:mark_rolled_back],
        rolled_back=snap[mark_rolled_back + SETTLING_SAMPLES:],
    )
