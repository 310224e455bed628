"""docker/standby.py: the blue-green standby record (labels, deadline, validity) and its marker container."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import standby as sb
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed

NOW = datetime.datetime(2030, 5, 1, 12, 0, 0, 500000, tzinfo=datetime.timezone.utc)


def test_a_standby_lasts_its_seconds_rounded_up_to_whole_seconds_and_survives_its_labels():
    standby = sb.Standby.starting("web", 3, 4, 2.5, NOW)
    assert standby.until - standby.since == datetime.timedelta(seconds=3)
    assert not standby.expired(NOW) and standby.expired(NOW + datetime.timedelta(seconds=3))
    labels = standby.to_labels()
    assert labels[sb.LABEL_UNTIL] == "2030-05-01T12:00:03Z" and "zerodown.workload" not in labels
    assert sb.Standby.from_labels(labels) == standby
    assert standby.to_dict(NOW) == {"revision": 3, "serving": 4, "since": "2030-05-01T12:00:00Z",
                                    "until": "2030-05-01T12:00:03Z", "expired": False}
    # zero seconds: expired at once
    assert sb.Standby.starting("web", 3, 4, 0, NOW).expired(NOW)


@pytest.mark.parametrize("damage", [{sb.LABEL_REVISION: "x"}, {sb.LABEL_UNTIL: "tomorrow"}, {sb.LABEL_STANDBY: ""}])
def test_damaged_labels_are_no_standby(damage):
    labels = dict(sb.Standby.starting("web", 1, 2, 60, NOW).to_labels(), **damage)
    assert sb.Standby.from_labels(labels) is None
    assert sb.Standby.from_labels(None) is None


def test_a_record_is_valid_only_while_its_revision_runs_and_stands_by_for_the_current_one():
    standby = sb.Standby.starting("web", 1, 2, 60, NOW)
    assert sb.valid_for(standby, {1, 2}, 2)
    assert not sb.valid_for(standby, {2}, 2)  # retired
    assert not sb.valid_for(standby, {1, 2}, 1)  # rolled back to it
    assert not sb.valid_for(None, {1, 2}, 2)


class FakeEngine:
    def __init__(self, missing_images=()):
        self.containers = {}
        self.missing_images = set(missing_images)
        self.removed = []

    def inspect_container(self, ref, what=""):
        for cid, (name, labels) in self.containers.items():
            if ref in (cid, name):
                return {"Id": cid, "Config": {"Labels": labels}}
        raise EngineNotFound(f"no {ref}")

    def create_unless_taken(self, config, name, what):
        if config["Image"] in self.missing_images:
            raise EngineNotFound("no such image")
        if any(n == name for n, _labels in self.containers.values()):
            return None
        cid = f"id{len(self.containers)}"
        self.containers[cid] = (name, config["Labels"])
        return cid

    def remove(self, cid, volumes=True, what=""):
        self.removed.append((cid, volumes))
        self.containers.pop(cid, None)


def test_the_marker_is_written_over_an_older_one_read_back_and_dropped():
    engine = FakeEngine(missing_images={"sha256:gone"})
    sb.write(engine, sb.Standby.starting("web", 1, 2, 60, NOW), ["sha256:gone", "sha256:ok"])
    sb.write(engine, sb.Standby.starting("web", 2, 3, 60, NOW), ["sha256:ok"])
    assert len(engine.containers) == 1
    cid, standby = sb.read(engine, "web")
    assert standby is not None and (standby.revision, standby.serving) == (2, 3)
    assert sb.read(engine, "shop") is None
    assert sb.drop(engine, "web") is True and sb.drop(engine, "web") is False and not engine.containers
    # each marker removed with its anonymous volumes (one per VOLUME of the app image it was created from)
    assert [volumes for _cid, volumes in engine.removed] == [True, True]
    with pytest.raises(RolloutFailed, match="no image of Docker workload 'web'"):
        sb.write(engine, sb.Standby.starting("web", 1, 2, 60, NOW), [])
