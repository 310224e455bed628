# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Per-member counters from a sample, for a load balancer that keeps none (nginx's open-source build).

``analysis.sample`` makes a step's analysis send, at every read, ``requests`` HTTP requests to each member of
the pool at the address the load balancer reaches it by, and count them the way HAProxy counts its servers'
traffic (answers, 5xx and 4xx answers, connections that failed, answers that broke off, response time). The
counts are cumulative from the first read, so :func:`~.analysis.delta` and :func:`~.analysis.analyse` judge
them as they judge HAProxy's. It is synthetic traffic: it shows what the new revision answers to the sampled
path, not what real users get.
"""

from __future__ import annotations

import http.client
import socket
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import ServerCounters
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

SAMPLE_OPTIONS: t.Dict[str, t.Dict[str, t.Any]] = {
    "path": {"type": "str"},
    "requests": {"type": "int"},
    "timeout": {"type": "float"},
}
DEFAULT_REQUESTS = 10
DEFAULT_TIMEOUT = 2.0
WORKER = "sample"


def sample_settings(params: t.Optional[t.Mapping[str, t.Any]]) -> t.Optional[tuple[str, int, float]]:
    """(path, requests per member and read, timeout) of ``analysis.sample``; None when it is not given."""
    if params is None:
        return None
    path = params.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput(f"analysis.sample.path must be the path the sample requests, starting with '/' (such as "
                           f"/healthz or /version), got {path!r}")
    requests = params.get("requests")
    if requests is not None and requests < 1:
        raise InvalidInput(f"analysis.sample.requests must be 1 or more (requests to each member at every read), "
                           f"got {requests}")
    timeout = params.get("timeout")
    if timeout is not None and timeout <= 0:
        raise InvalidInput(f"analysis.sample.timeout must be more than 0 seconds, got {timeout}")
    return (path, DEFAULT_REQUESTS if requests is None else int(requests),
            DEFAULT_TIMEOUT if timeout is None else float(timeout))


class SampledCounters:
    """``counters()`` of a pool measured by sampling each member (``name -> host:port``) directly."""

    def __init__(self, targets: t.Mapping[str, str], path: str, requests: int, timeout: float,
                 connect: t.Optional[t.Callable[[str, int, float], t.Any]] = None,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.targets = dict(targets)
        self.path = path
        self.requests = requests
        self.timeout = timeout
        self._connect = connect or (lambda host, port, timeout: http.client.HTTPConnection(host, port, timeout=timeout))
        self._clock = clock
        self._counts = {name: ServerCounters(worker=WORKER) for name in self.targets}
        self._elapsed_ms = {name: 0.0 for name in self.targets}
        self._read = False

    def counters(self) -> dict[str, ServerCounters]:
        """The counts so far; every read after the first sends ``requests`` requests to each member first (the
        first read starts the window at zero)."""
        if self._read:
            for name, address in self.targets.items():
                for _index in range(self.requests):
                    self._one(name, address)
        self._read = True
        return {name: ServerCounters(c.requests, c.responses_5xx, c.responses_4xx, c.connection_errors,
                                     c.response_errors, self._average(name), WORKER)
                for name, c in self._counts.items()}

    def _average(self, name: str) -> t.Optional[float]:
        answered = self._counts[name].requests
        return self._elapsed_ms[name] / answered if answered else None

    def _one(self, name: str, address: str) -> None:
        counts = self._counts[name]
        host, _sep, port = address.rpartition(":")
        started = self._clock()
        conn = self._connect(host.strip("[]"), int(port), self.timeout)
        try:
            try:
                conn.connect()
            except (OSError, socket.timeout):
                counts.connection_errors += 1
                return
            try:
                conn.request("GET", self.path, headers={"Connection": "close", "User-Agent": "zerodown-analysis"})
                answer = conn.getresponse()
                answer.read()
            except (OSError, http.client.HTTPException):
                counts.response_errors += 1
                counts.requests += 1
                return
        finally:
            conn.close()
        counts.requests += 1
        self._elapsed_ms[name] += (self._clock() - started) * 1000.0
        if answer.status >= 500:
            counts.responses_5xx += 1
        elif answer.status >= 400:
            counts.responses_4xx += 1
