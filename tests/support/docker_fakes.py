"""Stand-ins for the Docker backend's unit tests: an engine and a load balancer pool in memory."""
from __future__ import annotations

import copy

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Balancer, Member
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import WorkloadRef
from tests.support.fake_module import FakeModule


class Engine:
    """An engine in memory, as DockerEngine answers: containers by id (each inspect a fresh copy), images by
    reference and id; a clock ticks on every change, for StartedAt and FinishedAt."""

    def __init__(self):
        self.images = {"app:1": {"Id": "sha:1", "Config": {}}, "app:2": {"Id": "sha:2", "Config": {}}}
        self.by_id = {}
        self.created = 0
        self.tick = 0
        self.calls = []

    def _now(self):
        self.tick += 1
        return f"2024-01-01T00:00:{self.tick:02d}Z"

    def info(self):
        return {"ID": "E", "Name": "host", "DockerRootDir": "/d"}

    def containers(self, label):
        key, value = label.split("=", 1)
        return [{"Id": cid} for cid, c in self.by_id.items() if c["Config"]["Labels"].get(key) == value]

    def inspect_container(self, ref, what=""):
        found = self.by_id.get(ref) or next((c for c in self.by_id.values() if c["Name"] == f"/{ref}"), None)
        if found is None:
            raise EngineNotFound(f"the Docker engine found nothing to {what or 'inspect'}")
        return copy.deepcopy(found)

    def inspect_image(self, ref, what=""):
        image = self.images.get(ref) or next((i for i in self.images.values() if i["Id"] == ref), None)
        if image is None:
            raise EngineNotFound(f"the Docker engine found nothing to {what or 'inspect image'}")
        return copy.deepcopy(image)

    def create(self, config, name):
        self.created += 1
        cid = f"c{self.created}"
        self.calls.append(("create", name.rsplit("-", 1)[0]))
        self.by_id[cid] = {"Id": cid, "Name": f"/{name}", "Image": self.images[config["Image"]]["Id"],
                           "Config": {k: v for k, v in config.items() if k not in ("HostConfig", "NetworkingConfig")},
                           "HostConfig": config.get("HostConfig") or {}, "State": {"Status": "created"}}
        return cid

    def create_unless_taken(self, config, name, what):
        if any(c["Name"] == f"/{name}" for c in self.by_id.values()):
            return None
        self.calls.append(("lock",))
        return self.create(dict(config, Image="app:1"), name)

    def start(self, cid, what=""):
        self.calls.append(("start", self.by_id[cid]["Name"][1:]))
        self.by_id[cid]["State"] = {"Status": "running", "StartedAt": self._now(), "FinishedAt": ""}
        self.by_id[cid]["NetworkSettings"] = {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": cid[1:]}]}}

    def stop(self, cid, timeout, what=""):
        self.calls.append(("stop", self.by_id[cid]["Name"][1:]))
        self.by_id[cid]["State"] = dict(self.by_id[cid]["State"], Status="exited", FinishedAt=self._now())

    def remove(self, cid, volumes=True, what=""):
        self.calls.append(("remove", self.by_id.pop(cid)["Name"][1:]))

    def running(self):
        return sorted((c["Config"]["Labels"]["zerodown.revision"], c["Name"][1:]) for c in self.by_id.values()
                      if c["State"]["Status"] == "running")


class Pool(Balancer):
    """A load balancer in memory that routes: what it holds is what it was asked to hold, UP at once."""

    kind = "pool"

    def __init__(self, log):
        super().__init__()
        self.log = log
        self.pool = {}

    def members(self):
        return {n: Member(n, a, "UP") for n, a in self.pool.items()}

    def add(self, name, address):
        self.intent[name] = address
        self.pool[name] = address
        self.log.append(("add", name.split(".")[0]))

    def drain(self, name):
        self.intent.pop(name, None)
        self.log.append(("drain", name.split(".")[0]))

    def remove(self, name):
        self.intent.pop(name, None)
        self.pool.pop(name, None)

    def reconcile(self, settle=False, wait=True):
        return []


def platform_with(**params):
    return DockerPlatform(FakeModule(params), WorkloadRef("docker", "w"))


def planning(history, local=None, check_mode=True, **params):
    """A platform that plans on ``history`` in check mode, its engine answering ``local`` (image reference ->
    image id) for the images it has."""
    platform = platform_with(**params)
    platform.module.check_mode = check_mode
    platform.docker.load = lambda: history
    platform.docker.existing = lambda: history
    platform.docker.local_image = lambda ref: {"Id": local[ref]} if ref in (local or {}) else None
    platform.docker.image_config = lambda image_id: {}
    platform.docker.divergence = lambda history, members=None: []
    platform.docker.status = lambda history, target=None: None
    return platform
