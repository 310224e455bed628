"""docker/revisions.py: current, previous, retention and the history in the model's shape, worked out from the
containers' labels and states; the retained revision an upgrade restarts instead of creating one more."""
from __future__ import annotations

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import replicas as rp
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History, reusable

from tests.support.docker_containers import container_attrs as attrs
from tests.support.docker_containers import retained_replica as container


def history(*items):
    return History([rp.Replica.from_attrs(a) for a in items])


def test_current_is_running_and_previous_is_last_stopped():
    h = history(attrs("a", 1, False, "t1", "t5", "app:1"), attrs("b", 2, False, "t2", "t7", "app:2"),
                attrs("c", 3, True, "t6", "", "app:3"))
    assert h.current.number == 3
    assert h.previous.number == 2  # stopped last
    assert h.next_number == 4
    # after a rollback to 1, revision 3 was stopped last: "previous" points back to it
    h = history(attrs("a", 1, True, "t8", "t5", "app:1"), attrs("b", 2, False, "t2", "t7", "app:2"),
                attrs("c", 3, False, "t6", "t9", "app:3"))
    assert h.current.number == 1 and h.previous.number == 3


def test_mixed_running_revisions_current_is_started_last():
    h = history(attrs("a", 1, True, "t1"), attrs("b", 2, True, "t3"), attrs("c", 1, True, "t2"))
    assert h.current.number == 2


def test_a_recorded_standby_names_current_while_only_its_two_revisions_run():
    # revision 1 stands by for 2 and one of its containers restarted (started last): 2 is still current
    running = (attrs("a", 1, True, "t9"), attrs("b", 2, True, "t3"), attrs("c", 2, True, "t4"))
    h = History([rp.Replica.from_attrs(a) for a in running], standby=(1, 2))
    assert (h.current.number, h.previous.number) == (2, 1)
    assert history(*running).current.number == 1  # without the record: started last
    # a third revision running (an upgrade under way from 2): the record says nothing about it, started last decides
    h = History([rp.Replica.from_attrs(a) for a in running + (attrs("d", 3, True, "t8"),)], standby=(1, 2))
    assert h.current.number == 1
    # the serving revision stopped (rolled back to the standby): the record names nothing that runs
    h = History([rp.Replica.from_attrs(a) for a in (attrs("a", 1, True, "t1"), attrs("b", 2, False, "t3", "t5"))],
                standby=(1, 2))
    assert h.current.number == 1


def test_prune_keeps_current_and_most_recently_stopped():
    h = history(attrs("a", 1, False, "t1", "t2"), attrs("b", 2, False, "t3", "t6"), attrs("c", 3, False, "t4", "t5"),
                attrs("d", 4, True, "t6"))
    pruned = {r.revision for r in h.to_prune(1)}
    assert pruned == {1, 3}
    assert {r.revision for r in h.to_prune(0)} == {1, 2, 3}
    assert h.to_prune(5) == []


def test_revisions_in_model_shape():
    h = history(attrs("a", 1, False, "t1", "t2", "app:1"), attrs("d", 2, True, "t3", "", "app:2"),
                attrs("e", 2, True, "t4", "", "app:2"))
    revs = h.revisions("w")
    assert [(r.number, r.current, r.replicas, r.images) for r in revs] == [
        (1, False, 0, {"w": "app:1"}), (2, True, 2, {"w": "app:2"})]


# -- an upgrade to a retained revision -------------------------------------------------------------------------
def retained(*replicas):
    return History(list(replicas))


def no_image_config(image_id):
    return {}


def test_a_retained_revision_of_the_same_image_and_configuration_is_reused():
    history = retained(container("a", 1, "app:1", "sha:1", False), container("b", 1, "app:1", "sha:1", False),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    found = reusable(history, history.current, "app:1", "sha:1", no_image_config)
    assert found is not None and found.number == 1
    # another image id behind the same tag (rebuilt), or another reference: a new revision
    assert reusable(history, history.current, "app:1", "sha:other", no_image_config) is None
    assert reusable(history, history.current, "app:1-again", "sha:1", no_image_config) is None
    assert reusable(history, history.current, "app:1", None, no_image_config) is None


def test_a_retained_revision_with_another_configuration_is_not_reused():
    history = retained(container("a", 1, "app:1", "sha:1", False, env=("A=0",)),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    assert reusable(history, history.current, "app:1", "sha:1", no_image_config) is None
    # one container of the revision differing is enough
    history = retained(container("a", 1, "app:1", "sha:1", False), container("b", 1, "app:1", "sha:1", False,
                                                                             env=("A=0",)),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    assert reusable(history, history.current, "app:1", "sha:1", no_image_config) is None


def test_a_revision_with_running_containers_is_not_a_retained_one():
    history = retained(container("a", 1, "app:1", "sha:1", True),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    assert reusable(history, history.current, "app:1", "sha:1", no_image_config) is None
