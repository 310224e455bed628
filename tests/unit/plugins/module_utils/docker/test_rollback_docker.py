"""The rollback's planning (docker/rollback.py): its target, refusals before anything is read or changed, and what
check mode predicts (the switch back to a blue-green standby: test_blue_green.py; the swap itself: test_swap.py)."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.rollback import RollbackPlan
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput
from tests.support.docker_containers import retained_replica as container
from tests.support.docker_fakes import planning, platform_with


# -- rollback targets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [0, None])
def test_rollback_to_revision_zero_means_the_previous_one_as_kubectl(given):
    history = History([container("a", 1, "app:1", "sha:1", False),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z")])
    platform = planning(history)
    platform.params["to_revision"] = given
    result = RollbackPlan(platform).plan(history)
    assert result.changed and "back from revision 2 to revision 1" in result.message, result.message


def test_rollback_to_a_negative_revision_is_refused():
    platform = platform_with()
    platform.docker.existing = lambda: pytest.fail("read the engine before refusing the input")
    with pytest.raises(InvalidInput, match="to_revision must be zero or more"):
        platform.rollback({"to_revision": -1})


def test_a_revision_that_is_not_retained_is_refused_naming_those_that_are():
    history = History([container("a", 1, "app:1", "sha:1", False), container("c", 2, "app:2", "sha:2", True)])
    platform = planning(history)
    platform.params["to_revision"] = 7
    with pytest.raises(InvalidInput, match=r"has no revision 7 to roll back to \(retained: 1, 2\)"):
        RollbackPlan(platform).plan(history)


def test_with_a_single_revision_there_is_nothing_to_roll_back_to():
    history = History([container("c", 2, "app:2", "sha:2", True)])
    with pytest.raises(InvalidInput, match="no previous revision to roll back to: only revision 2 is retained"):
        RollbackPlan(planning(history)).plan(history)
