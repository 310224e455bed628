"""The deployment controller's arithmetic against hand-computed tables (no server involved)."""
from __future__ import annotations

import pytest

from tests.k8s_server.controllers import deployment as dc

pytestmark = pytest.mark.k8s


def _d(replicas: int, surge, unavail) -> dict:
    return {"metadata": {"name": "web", "generation": 1}, "spec": {
        "replicas": replicas, "strategy": {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}}}


def _rs(name: str, created: str, spec: int, available: int, max_replicas: int | None = None) -> dict:
    ann = {} if max_replicas is None else {dc.MAX_REPLICAS: str(max_replicas)}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann},
            "spec": {"replicas": spec}, "status": {"replicas": spec, "availableReplicas": available}}


def _scale(rs: dict, n: int) -> bool:
    changed = rs["spec"]["replicas"] != n
    rs["spec"]["replicas"] = n
    return changed


@pytest.mark.parametrize(("surge", "unavail", "replicas", "expected"), [
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 10, (3, 2)),     # 2.5 rounds up for surge, down for unavailable
    ("10%", "10%", 3, (1, 0)),
    (0, 0, 3, (0, 1)),              # both zero: unavailable becomes 1
    ("0%", "0%", 5, (0, 1)),
    (0, "100%", 5, (0, 5)),
    ("50%", 0, 3, (2, 0)),
    (2, 1, 10, (2, 1)),
])
def test_fenceposts(surge, unavail, replicas, expected):
    assert dc.resolve_fenceposts(surge, unavail, replicas) == expected


def test_max_unavailable_is_capped_and_zero_for_zero_replicas():
    assert dc.max_unavailable(_d(3, 0, 5)) == 3
    assert dc.max_unavailable(_d(0, 0, 1)) == 0


def test_rolling_trace_4_replicas_25_25():
    """old 4/new 0 -> new 1, old 3 -> new 2 -> old 1 -> new 4 -> old 0 (pods ready between syncs)."""
    d = _d(4, "25%", "25%")
    old = _rs("web-old", "2024-01-01T00:00:00Z", 4, 4)
    new = _rs("web-new", "2024-01-02T00:00:00Z", 0, 0)
    # creating the new ReplicaSet: NewRSNewReplicas = min(4+1-4, 4-0) = 1
    new["spec"]["replicas"] = dc.new_rs_new_replicas(d, [old, new], new)
    trace = []

    def sync(ready: bool) -> None:
        if ready:
            for rs in (old, new):
                rs["status"]["availableReplicas"] = rs["spec"]["replicas"]
        if not dc.reconcile_new_replica_set(d, [old, new], new, _scale):
            dc.reconcile_old_replica_sets(d, [old, new], dc.filter_active([old]), new, _scale)
        trace.append((old["spec"]["replicas"], new["spec"]["replicas"]))

    sync(ready=False)   # maxScaledDown = 5 - 3 - (1 - 0) = 1
    sync(ready=False)   # 4 in total: new may grow to 2
    sync(ready=True)    # 5 available, min 3: old down by 2
    sync(ready=False)   # new fills up to 4
    sync(ready=True)    # old down to 0
    assert trace == [(3, 1), (3, 2), (1, 2), (1, 4), (0, 4)]


def test_max_unavailable_zero_never_drops_below_desired_available():
    d = _d(3, 1, 0)
    old = _rs("o", "2024-01-01T00:00:00Z", 3, 3)
    new = _rs("n", "2024-01-02T00:00:00Z", 1, 0)
    # the new pod is not available yet: nothing may go down
    assert dc.reconcile_new_replica_set(d, [old, new], new, _scale) is False
    assert dc.reconcile_old_replica_sets(d, [old, new], [old], new, _scale) is False
    assert old["spec"]["replicas"] == 3
    new["status"]["availableReplicas"] = 1
    assert dc.reconcile_old_replica_sets(d, [old, new], [old], new, _scale) is True
    assert old["spec"]["replicas"] == 2


def test_unhealthy_old_replicas_are_removed_first():
    """Old pods that are not available are cleaned up before the availability budget is spent."""
    d = _d(3, 1, 1)
    old = _rs("o", "2024-01-01T00:00:00Z", 3, 1)      # two old pods crash-looping
    new = _rs("n", "2024-01-02T00:00:00Z", 1, 0)
    # maxScaledDown = 4 - 2 - 1 = 1: spent on an unhealthy old pod; then available 1 <= min 2: stop
    assert dc.reconcile_old_replica_sets(d, [old, new], [old], new, _scale) is True
    assert old["spec"]["replicas"] == 2


def test_scale_up_stops_at_max_surge():
    d = _d(10, 3, 2)
    old = _rs("o", "2024-01-01T00:00:00Z", 8, 8)
    new = _rs("n", "2024-01-02T00:00:00Z", 5, 0)
    assert dc.new_rs_new_replicas(d, [old, new], new) == 5  # 13 = 10 + 3 already


def test_proportional_scaling_mid_rollout():
    """The documented example: 8 old + 5 new at replicas 10 (surge 3), scaled to 15 -> +3 old, +2 new."""
    d = _d(15, 3, 2)
    old = _rs("o", "2024-01-01T00:00:00Z", 8, 8, max_replicas=13)
    new = _rs("n", "2024-01-02T00:00:00Z", 5, 0, max_replicas=13)
    plan = {rs["metadata"]["name"]: size for rs, size in dc.proportional_plan(d, new, [old])}
    assert plan == {"o": 11, "n": 7}


def test_status_is_computed_like_upstream():
    d = _d(4, 1, 1)
    old = _rs("o", "2024-01-01T00:00:00Z", 3, 3)
    new = _rs("n", "2024-01-02T00:00:00Z", 2, 1)
    old["status"].update(replicas=3, readyReplicas=3)
    new["status"].update(replicas=1, readyReplicas=1)  # RS status lags its spec
    s = dc.calculate_status(d, [old, new], new)
    assert (s["replicas"], s["updatedReplicas"], s["availableReplicas"], s["unavailableReplicas"]) == (4, 1, 4, 1)
    assert [c["reason"] for c in s["conditions"]] == ["MinimumReplicasAvailable"]


def test_revision_annotations_on_rollback_reuse():
    d = {"metadata": {"annotations": {"team": "a", dc.LAST_APPLIED: "{}", dc.REVISION: "3"}}, "spec": {"replicas": 1}}
    rs = {"metadata": {"annotations": {dc.REVISION: "2"}}, "spec": {"replicas": 0}}
    assert dc.set_new_rs_annotations(d, rs, "4", exists=True) is True
    ann = rs["metadata"]["annotations"]
    assert ann[dc.REVISION] == "4" and ann[dc.REVISION_HISTORY] == "2" and ann["team"] == "a"
    assert dc.LAST_APPLIED not in ann
    rs["metadata"]["annotations"][dc.REVISION] = "6"
    dc.set_new_rs_annotations(d, rs, "8", exists=True)
    assert rs["metadata"]["annotations"][dc.REVISION_HISTORY] == "2,6"
