"""docker/adopt.py: the selectors, the adopted set (found by the selector, then only by the record the workload's
own containers carry), the app's port, the copies' labels/ports/Compose numbers, and the refusals."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.adopt import (
    LABEL_ADOPTED,
    Adoption,
    Copies,
    adapt_clone,
    adoption_findings,
    selector_from_params,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput


def container(cid, name, image="app:1.0", image_id="sha:1", labels=None, status="running", ports=None):
    ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(30000 + len(cid))}]} if ports is None else ports
    return {"Id": cid, "Name": f"/{name}", "Image": image_id, "Created": "2026-01-02T03:04:05.123Z",
            "Config": {"Image": image, "Labels": dict(labels or {"app": "web"})},
            "HostConfig": {"PortBindings": {k: [{"HostIp": "127.0.0.1", "HostPort": "8081"}] for k in ports}},
            "NetworkSettings": {"Ports": ports},
            "State": {"Status": status, "StartedAt": "2026-01-02T03:04:06Z", "FinishedAt": ""}}


class Engine:
    """Stands for DockerEngine: containers by id; a label query matches containers carrying all its labels."""

    def __init__(self, *containers):
        self.by_id = {c["Id"]: c for c in containers}
        self.queries = []

    def containers_labelled(self, labels):
        self.queries.append(list(labels))

        def has(c, sel):
            key, _sep, value = sel.partition("=")
            got = c["Config"]["Labels"]
            return key in got and (not value or got[key] == value)
        return [{"Id": c["Id"]} for c in self.by_id.values() if all(has(c, s) for s in labels)]

    def inspect_container(self, ref, what=""):
        for c in self.by_id.values():
            if c["Id"] == ref or c["Name"].lstrip("/") == ref:
                return c
        raise EngineNotFound(f"no container {ref}")


def adoption(params, port=None):
    return Adoption("web", selector_from_params(params), port, "unix:///var/run/docker.sock")


# -- selectors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, says", [
    ({"adopt": {"labels": {"app": "web"}}, "compose_project": "shop", "compose_service": "web"}, "give one of them"),
    ({"compose_project": "shop"}, "go together"),
    ({"compose_project": "", "compose_service": "web"}, "go together"),
    ({"adopt": {"labels": {"app": "web"}, "names": ["a"]}}, "exactly one of labels"),
    ({"adopt": {"labels": None, "names": None}}, "exactly one of labels"),
    ({"adopt": {"labels": {}}}, "may not be empty"),
    ({"adopt": {"labels": {"zerodown.workload": "x"}}}, "zerodown.workload"),
    ({"adopt": {"names": []}}, "one container name or more"),
    ({"adopt": {"names": ["a", "a"]}}, "twice"),
])
def test_a_selector_that_cannot_mean_one_set_is_refused(params, says):
    with pytest.raises(InvalidInput, match=says):
        selector_from_params(params)


def test_no_selector_without_adopt_or_compose():
    assert selector_from_params({"adopt": None, "compose_project": None, "compose_service": None}) is None


def test_compose_selector_uses_composes_labels_and_leaves_one_off_containers_out():
    sel = selector_from_params({"compose_project": "shop", "compose_service": "web"})
    assert sel.filters() == ["com.docker.compose.project=shop", "com.docker.compose.service=web",
                             "com.docker.compose.oneoff=False"]


# -- finding the adopted set -----------------------------------------------------------------------
def test_labels_select_running_containers_as_revision_1_with_the_published_port():
    engine = Engine(container("a1", "web-a"), container("b22", "web-b"), container("c3", "web-c", status="exited"),
                    container("d4", "other", labels={"app": "db"}))
    ad = adoption({"adopt": {"labels": {"app": "web"}}})
    reps = ad.find(engine, [])
    assert [(r.name, r.revision, r.image) for r in reps] == [("web-a", 1, "app:1.0"), ("web-b", 1, "app:1.0")]
    assert [r.address for r in reps] == ["127.0.0.1:30002", "127.0.0.1:30003"]
    assert ad.ids == ["a1", "b22"] and ad.by_selector and ad.found_port == "8080/tcp"
    assert reps[0].created == "2026-01-02T03:04:05Z" and "adopted" in reps[0].change_cause
    assert engine.queries == [["app=web"]]


def test_names_must_all_exist_and_run():
    engine = Engine(container("a1", "web-a"), container("b2", "web-b", status="exited"))
    with pytest.raises(InvalidInput, match=r"no container is named web-x; web-b not running"):
        adoption({"adopt": {"names": ["web-a", "web-b", "web-x"]}}).find(engine, [])
    reps = adoption({"adopt": {"names": ["web-a"]}}).find(engine, [])
    assert [r.name for r in reps] == ["web-a"]


def test_a_selector_that_matches_nothing_is_refused():
    engine = Engine(container("a1", "web-a", labels={"app": "db"}))
    with pytest.raises(InvalidInput, match=r"adopt.labels matches no running container .*app=web"):
        adoption({"adopt": {"labels": {"app": "web"}}}).find(engine, [])


def test_a_compose_service_that_does_not_exist_says_how_the_project_is_named():
    with pytest.raises(InvalidInput, match=r"Compose service 'web' of project 'shop' does not exist.*directory name"):
        adoption({"compose_project": "shop", "compose_service": "web"}).find(Engine(), [])


def test_containers_of_two_images_are_refused():
    engine = Engine(container("a1", "web-a"), container("b2", "web-b", image="app:2.0", image_id="sha:2"))
    with pytest.raises(InvalidInput, match=r"2 different images \(web-a \(app:1.0\); web-b \(app:2.0\)\)"):
        adoption({"adopt": {"labels": {"app": "web"}}}).find(engine, [])


def test_containers_of_a_workload_are_never_adopted():
    engine = Engine(container("a1", "web-a", labels={"app": "web", "zerodown.workload": "other"}))
    with pytest.raises(InvalidInput, match="matches no running container"):
        adoption({"adopt": {"labels": {"app": "web"}}}).find(engine, [])


@pytest.mark.parametrize("ports, port, problem", [
    ({}, None, "publish no port"),
    ({"8080/tcp": [{"HostIp": "", "HostPort": "1"}], "9090/tcp": [{"HostIp": "", "HostPort": "2"}]}, None,
     "publish 8080/tcp, 9090/tcp"),
    ({"8080/tcp": [{"HostIp": "", "HostPort": "1"}]}, "9999/tcp", "9999/tcp is not published"),
])
def test_the_apps_port_must_be_known_for_an_upgrade(ports, port, problem):
    engine = Engine(container("a1", "web-a", ports=ports))
    ad = adoption({"adopt": {"labels": {"app": "web"}}}, port)
    ad.find(engine, [])
    assert problem in ad.port_problem
    with pytest.raises(InvalidInput, match="cannot adopt"):
        ad.check_change(routes=True)


def test_the_port_given_picks_one_of_several_published_ones():
    ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1"}], "9090/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2"}]}
    ad = adoption({"adopt": {"labels": {"app": "web"}}}, "9090/tcp")
    reps = ad.find(Engine(container("a1", "web-a", ports=ports)), [])
    assert reps[0].address == "127.0.0.1:2" and not ad.port_problem


def test_an_upgrade_of_an_adopted_set_needs_a_load_balancer():
    ad = adoption({"adopt": {"labels": {"app": "web"}}})
    ad.find(Engine(container("a1", "web-a")), [])
    with pytest.raises(InvalidInput, match="needs a load_balancer"):
        ad.check_change(routes=False)
    ad.check_change(routes=True)


def own(cid, adopted, port="8080/tcp"):
    labels = {"app": "web", "zerodown.workload": "web", "zerodown.revision": "2", "zerodown.port": port}
    if adopted is not None:
        labels[LABEL_ADOPTED] = adopted
    return Replica.from_attrs(container(cid, f"web-r2-{cid}", labels=labels, image="app:2.0"))


def test_once_the_workload_has_containers_only_the_recorded_set_is_adopted_running_or_not():
    engine = Engine(container("a1", "web-a", status="exited", ports={}), container("b2", "web-b"),
                    container("n9", "web-new"))  # started by hand after the upgrade, matches the selector
    ad = adoption({"adopt": {"labels": {"app": "web"}}})
    reps = ad.find(engine, [own("z1", "a1,b2,gone")])
    assert sorted(r.name for r in reps) == ["web-a", "web-b"]
    assert not ad.by_selector and engine.queries == []
    # without the selector (a later rollback task) the same set is found
    assert sorted(r.name for r in adoption({}).find(engine, [own("z1", "a1,b2")])) == ["web-a", "web-b"]


def test_a_workload_created_by_the_collection_adopts_nothing():
    engine = Engine(container("b2", "web-b"))
    assert adoption({"adopt": {"labels": {"app": "web"}}}).find(engine, [own("z1", None)]) == []


# -- the copies ------------------------------------------------------------------------------------
def test_a_copy_of_an_adopted_container_gets_the_workloads_labels_and_an_ephemeral_host_port():
    template = container("a1", "web-a")
    ad = adoption({"adopt": {"labels": {"app": "web"}}})
    ad.find(Engine(template, container("b2", "web-b")), [])
    body = {"Image": "app:2.0", "Labels": {"app": "web", "zerodown.revision": "2"},
            "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]}}}
    copies = Copies(ad, lambda project, service: [])
    out = copies.adapt(body, template)
    assert out["Labels"] == {"app": "web", "zerodown.revision": "2", "zerodown.workload": "web",
                             "zerodown.adopted": "a1,b2", "zerodown.port": "8080/tcp", "zerodown.image": "app:2.0"}
    assert out["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert body["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == "8081"  # the template's body is untouched
    assert copies.name(out) is None


def test_copies_of_a_compose_container_get_fresh_numbers_and_composes_names():
    labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web",
              "com.docker.compose.container-number": "2", "com.docker.compose.oneoff": "False"}
    template = container("a1", "shop_web_2", labels=labels)
    ad = adoption({"compose_project": "shop", "compose_service": "web"})
    ad.find(Engine(template), [])
    asked = []
    copies = Copies(ad, lambda project, service: asked.append((project, service)) or [1, 2, 3])
    names = [copies.name(copies.adapt({"Labels": dict(labels), "HostConfig": {}}, template)) for _copy in range(2)]
    assert names == ["shop_web_4", "shop_web_5"]
    assert asked == [("shop", "web")]  # the engine is asked once per run


def test_labels_the_template_carries_are_kept():
    out = adapt_clone({"Labels": {"zerodown.workload": "web", "zerodown.port": "80/tcp"}}, {},
                      {"zerodown.workload": "other", "zerodown.port": "8080/tcp"}, None)
    assert out["Labels"]["zerodown.port"] == "80/tcp" and out["Labels"]["zerodown.workload"] == "web"


# -- preflight -------------------------------------------------------------------------------------
def test_preflight_says_what_adoption_will_do_or_why_it_cannot():
    engine = Engine(container("a1", "web-a"), container("b2", "web-b"))
    ad = adoption({"adopt": {"labels": {"app": "web"}}})
    history = History(ad.find(engine, []))
    [finding] = adoption_findings(ad, history, "")
    assert finding.check == "adoption" and finding.severity == "warning"
    assert "web-a, web-b" in finding.message and "revision 1" in finding.message and "8080/tcp" in finding.message
    [finding] = adoption_findings(ad, history, None)
    assert finding.severity == "error" and "load balancer" in finding.message
    assert adoption_findings(adoption({}), History([]), "") == []


# -- the hooks in workload.py ----------------------------------------------------------------------
class WorkloadEngine(Engine):
    """Engine plus what DockerWorkload reads: the workload's own containers by label, the engine's identity."""

    def containers(self, label):
        return self.containers_labelled([label])

    def info(self):
        return {"ID": "ABCD", "Name": "host-1", "DockerRootDir": "/var/lib/docker"}


def test_the_workload_reads_the_adopted_set_as_revision_1_and_owns_its_members():
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload import DockerWorkload
    from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import WorkloadRef

    engine = WorkloadEngine(container("a1", "web-a"), container("b2", "web-b"))
    docker = DockerWorkload(WorkloadRef("docker", "web"), {"adopt": {"labels": {"app": "web"}}}, lambda argv: (0, "", ""))
    docker._engine = engine
    history = docker.load()
    assert list(history.groups) == [1] and history.current.number == 1
    scope = docker.scope(history)
    assert scope.owns(scope.name("web-a")) and scope.owns(scope.name("web-b")) and not scope.owns(scope.name("other"))
    # given with another selector option, it is refused before anything is read
    docker = DockerWorkload(WorkloadRef("docker", "web"), {"adopt": {"names": ["web-a"]}, "compose_project": "p",
                                                           "compose_service": "s"}, lambda argv: (0, "", ""))
    docker._engine = engine
    with pytest.raises(InvalidInput, match="give one of them"):
        docker.load()


def test_a_compose_workload_owns_the_members_of_copies_named_after_its_scope_was_bound():
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload import DockerWorkload
    from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import WorkloadRef

    labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web",
              "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False"}
    engine = WorkloadEngine(container("a1", "shop_web_1", labels=labels))
    for params in ({"compose_project": "shop", "compose_service": "web"}, {}):
        docker = DockerWorkload(WorkloadRef("docker", "web"), params, lambda argv: (0, "", ""))
        docker._engine = engine
        scope = docker.scope(History([Replica.from_attrs(engine.by_id["a1"])]))  # also from the labels alone
        assert scope.owns(scope.name("shop_web_1")) and scope.owns(scope.name("shop_web_17"))
        assert not scope.owns(scope.name("shop_worker_1")) and not scope.owns(scope.name("shop_web_x"))
        assert not scope.owns("shop_web_2.ffffff")  # another engine's
