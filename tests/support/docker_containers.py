"""What the Docker engine says of a replica (``docker inspect``), for the Docker backend's unit tests: the labels this
collection puts on its containers, the state, and the published port or the configuration an upgrade clones."""
from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import replicas as rp


def container_attrs(cid: str, rev: int, running: bool, started: str = "", finished: str = "", image: str = "app:1",
                    port: t.Optional[int] = None, name: t.Optional[str] = None, *,
                    container_id: t.Optional[str] = None, image_id: t.Optional[str] = None,
                    labels: t.Optional[dict[str, str]] = None, env: t.Optional[t.Sequence[str]] = None,
                    health: t.Optional[str] = "healthy") -> dict[str, t.Any]:
    """The inspect document of container ``cid`` (its id ``cid`` eight times unless ``container_id``) of revision
    ``rev`` of workload ``w``, serving 8080/tcp, published on 127.0.0.1:``port`` when given.

    ``labels`` adds to (or overrides) the collection's labels; ``env`` gives the container the configuration an
    upgrade clones (that environment, the port exposed and bound to 127.0.0.1); ``health`` None: no HEALTHCHECK.
    """
    config: dict[str, t.Any] = {
        "Image": image,
        "Labels": {rp.LABEL_WORKLOAD: "w", rp.LABEL_REVISION: str(rev), rp.LABEL_IMAGE: image,
                   rp.LABEL_PORT: "8080/tcp", rp.LABEL_CREATED: started, **(labels or {})},
    }
    doc: dict[str, t.Any] = {
        "Id": cid * 8 if container_id is None else container_id,
        "Name": f"/{name or f'w-r{rev}-{cid}'}",
        "Image": f"sha256:{image}" if image_id is None else image_id,
        "Config": config,
        "State": {"Status": "running" if running else "exited", "StartedAt": started, "FinishedAt": finished},
        "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]} if port else {}},
    }
    if health is not None:
        doc["State"]["Health"] = {"Status": health}
    if env is not None:
        config["Env"] = list(env)
        config["ExposedPorts"] = {"8080/tcp": {}}
        doc["HostConfig"] = {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}
    return doc


def retained_replica(cid: str, rev: int, image: str, image_id: str, running: bool, env: t.Sequence[str] = ("A=1",),
                     created: str = "2024-01-01T00:00:00Z") -> rp.Replica:
    """A replica of revision ``rev`` (started on day ``rev`` of 2024, stopped an hour later unless ``running``) with
    the configuration an upgrade clones or restarts, its image ``image_id`` locally."""
    return rp.Replica.from_attrs(container_attrs(
        cid, rev, running, started=f"2024-01-0{rev}T00:00:00Z", finished="" if running else f"2024-01-0{rev}T01:00:00Z",
        image=image, container_id=cid, image_id=image_id, env=env, health=None,
        labels={rp.LABEL_CAUSE: f"cause {rev}", rp.LABEL_CREATED: created, rp.LABEL_REPLICAS: "2", "team": "shop"},
    ))
