"""Revision history: owner filtering, kubectl's target choice, template equality, annotations."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import revisions as rev
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

UID = "uid-web"
OTHER = "uid-web-canary"


def template(image, pod_hash=None, extra_labels=None):
    labels = {"app": "web"}
    labels.update(extra_labels or {})
    if pod_hash:
        labels["pod-template-hash"] = pod_hash
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}}


def rs(name, number, image, owner=UID, annotations=None, controller=True, replicas=0):
    ann = {"deployment.kubernetes.io/revision": str(number)} if number is not None else {}
    ann.update(annotations or {})
    return {
        "metadata": {"name": name, "annotations": ann, "labels": {"app": "web", "pod-template-hash": name[-5:]},
                     "ownerReferences": [{"kind": "Deployment", "name": "x", "uid": owner, "controller": controller}],
                     "creationTimestamp": f"2026-01-0{number or 1}T00:00:00Z"},
        "spec": {"template": template(image, name[-5:])},
        "status": {"replicas": replicas},
    }


def test_owner_filter_ignores_look_alike_replicasets():
    items = [
        rs("web-aaaa1", 1, "app:1.0"),
        rs("web-aaaa2", 2, "app:2.0", replicas=3),
        # Another Deployment whose pods share the app=web label, with a higher revision number.
        rs("web-canary-bbbb1", 7, "app:evil", owner=OTHER),
        # Owned but not as controller (e.g. orphaned then referenced): not history.
        rs("web-cccc1", 5, "app:orphan", controller=False),
        # Owned, but the controller never annotated it.
        rs("web-dddd1", None, "app:none"),
    ]
    entries = rev.replica_set_entries(items, UID)
    assert [e.number for e in entries] == [1, 2]
    assert rev.select_target(entries, None, "d").template["spec"]["containers"][0]["image"] == "app:1.0"


def test_second_highest_revision_not_current_minus_one():
    # After a rollback, history {1, 3, 4} (RS#2 became #4): kubectl undo goes to 3, not to "4 - 1" by accident.
    entries = rev.replica_set_entries([rs("web-aaaa1", 1, "a:1"), rs("web-aaaa3", 3, "a:3"),
                                       rs("web-aaaa4", 4, "a:2")], UID)
    assert rev.select_target(entries, None, "d").number == 3
    # With gaps from pruning (history 5 and 9 only), the previous one is 5 (current - 1 = 8 does not exist).
    pruned = rev.replica_set_entries([rs("web-aaaa5", 5, "a:5"), rs("web-aaaa9", 9, "a:9")], UID)
    assert rev.select_target(pruned, None, "d").number == 5
    assert rev.select_target(pruned, 0, "d").number == 5


def test_explicit_and_missing_revisions():
    entries = rev.replica_set_entries([rs("web-aaaa5", 5, "a:5"), rs("web-aaaa9", 9, "a:9")], UID)
    assert rev.select_target(entries, 9, "d").name == "web-aaaa9"
    with pytest.raises(InvalidInput) as err:
        rev.select_target(entries, 2, "Deployment ns/web")
    assert "unable to find revision 2" in err.value.msg and "5, 9" in err.value.msg
    with pytest.raises(InvalidInput):
        rev.select_target(entries, -1, "d")
    with pytest.raises(InvalidInput) as err:
        rev.select_target(entries[:1], None, "Deployment ns/web")
    assert "no earlier revision" in err.value.msg


def test_template_equality_ignores_hash_and_empty_fields():
    a = template("app:1.0", "abc12")
    b = template("app:1.0")
    b["spec"]["volumes"] = []
    b["metadata"]["annotations"] = {}
    assert rev.templates_equal(a, b)
    assert not rev.templates_equal(a, template("app:2.0"))
    assert not rev.templates_equal(a, template("app:1.0", extra_labels={"tier": "x"}))


def test_rollback_patch_strips_hash_and_keeps_annotations():
    deployment = {"metadata": {"annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{applied}",
        "deployment.kubernetes.io/revision": "4",
        "kubernetes.io/change-cause": "release 2.0",
        "team": "shop",
    }}}
    target = rev.replica_set_entries([rs("web-aaaa1", 1, "app:1.0", annotations={
        "kubernetes.io/change-cause": "release 1.0",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
        "kubectl.kubernetes.io/last-applied-configuration": "{old applied}",
    })], UID)[0]
    ops = rev.deployment_rollback_patch(deployment, target)
    tmpl = ops[0]["value"]
    assert ops[0]["op"] == "replace" and ops[0]["path"] == "/spec/template"
    assert "pod-template-hash" not in tmpl["metadata"]["labels"]
    assert tmpl["spec"]["containers"][0]["image"] == "app:1.0"
    # The target's RS template keeps its hash (the patch is built from a copy).
    assert target.template["metadata"]["labels"]["pod-template-hash"] == "aaaa1"
    annotations = ops[1]["value"]
    assert annotations == {
        "kubectl.kubernetes.io/last-applied-configuration": "{applied}",  # skip list: the Deployment's own
        "deployment.kubernetes.io/revision": "4",
        "kubernetes.io/change-cause": "release 1.0",  # restored from the target revision
        "team": "shop",  # kept (kubernetes.core's k8s_rollback would drop it)
    }


def test_rollback_without_recorded_cause_gets_an_honest_one():
    target = rev.replica_set_entries([rs("web-aaaa1", 1, "app:1.0")], UID)[0]
    ops = rev.deployment_rollback_patch({"metadata": {"annotations": {"kubernetes.io/change-cause": "release 2.0"}}},
                                        target)
    assert ops[1]["value"]["kubernetes.io/change-cause"] == "zerodown.rollout.rollback to revision 1 (app=app:1.0)"


def test_controller_revisions_owner_filter_and_patch():
    def cr(name, number, image, owner=UID):
        return {"metadata": {"name": name, "ownerReferences": [{"uid": owner, "controller": True}],
                             "annotations": {"kubernetes.io/change-cause": f"to {image}"}},
                "revision": number,
                "data": {"spec": {"template": dict(template(image), **{"$patch": "replace"})}}}

    entries = rev.controller_revision_entries([cr("db-1", 1, "db:1"), cr("db-2", 2, "db:2"),
                                               cr("other-9", 9, "x:9", owner=OTHER)], UID)
    assert [e.number for e in entries] == [1, 2]
    target = rev.select_target(entries, None, "StatefulSet ns/db")
    assert target.number == 1
    assert rev.templates_equal(target.template, template("db:1"))
    patch = rev.controller_revision_patch(target)
    assert patch["spec"]["template"]["$patch"] == "replace"
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "db:1"
    assert entries[1].to_revision(True, "ControllerRevision").change_cause == "to db:2"


def test_selector_string():
    assert rev.selector_string({"matchLabels": {"b": "2", "a": "1"},
                                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]},
                                                     {"key": "gone", "operator": "DoesNotExist"}]}) == \
        "a=1,b=2,tier in (x,y),!gone"
    assert rev.selector_string(None) == ""


def test_template_images_include_init_containers():
    tmpl = template("app:1.0")
    tmpl["spec"]["initContainers"] = [{"name": "migrate", "image": "app:1.0"}]
    assert rev.template_images(tmpl) == {"migrate": "app:1.0", "app": "app:1.0"}


def test_renumbered_revisions_are_still_found():
    # After "rollback to 1" the controller renumbered RS#1 to 3 and recorded the old number.
    entries = rev.replica_set_entries([rs("web-aaaa2", 2, "a:2"), rs("web-aaaa1", 3, "a:1", annotations={
        "deployment.kubernetes.io/revision-history": "1"})], UID)
    assert rev.select_target(entries, 1, "d").name == "web-aaaa1"
    # StatefulSets/DaemonSets keep no revision-history: our aliases annotation stands in for it.
    workload = {"metadata": {"annotations": {rev.ALIASES_ANNOTATION: "4=db-old"}}}
    target = rev.HistoryEntry(1, "db-abc", {}, {}, None, None, {"data": {"spec": {"template": {"$patch": "replace"}}}})
    patch = rev.controller_revision_patch(target, workload)
    assert rev.parse_aliases(patch["metadata"]["annotations"][rev.ALIASES_ANNOTATION]) == {1: "db-abc", 4: "db-old"}
    renumbered = [target._replace(number=5)]
    assert rev.select_target(renumbered, 1, "d", rev.parse_aliases("1=db-abc")).number == 5
    with pytest.raises(InvalidInput):
        rev.select_target(renumbered, 1, "d", {})
