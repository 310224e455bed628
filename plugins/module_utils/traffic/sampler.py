# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP traffic sampler: what a ``while true; do curl URL; done`` loop would see, as numbers.

``TrafficSampler(config).run(requests=N | duration=S)`` -> ``TrafficReport`` (``report.py``); ``collect()``
gives the raw samples, which the recorder (``recorder.py``) uses. Used by the ``traffic_check`` lookup (and so
by the roles' traffic gates), and by the tests, benchmarks and ``tools/traffic_watch.py``. No module imports
it: the Docker backend's health gate has its own probe (``docker/replicas.py``, ``http_probe``). Needs
``requests``: ``HAS_REQUESTS`` and ``missing_requests_message()`` say when it is missing.
"""
from __future__ import annotations

import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import (
    SamplerConfig,
    TrafficError,
    redact_url,
    validate_number,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.report import Sample, TrafficReport

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.exceptions import LocationParseError
    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - exercised only where requests is absent
    HAS_REQUESTS = False


def missing_requests_message() -> str:
    """The ``missing_required_lib`` text for ``requests`` (Ansible's wording when it is importable)."""
    try:
        from ansible.module_utils.basic import missing_required_lib
        return missing_required_lib("requests")
    except ImportError:  # running outside Ansible (the watch tool on a bare Python)
        return ("Failed to import the required Python library (requests) on this host's Python. "
                "Please read the module documentation and install it in the appropriate location.")


def require_requests() -> None:
    """Raise ``TrafficError`` with an install hint when ``requests`` cannot be imported."""
    if not HAS_REQUESTS:
        raise TrafficError(missing_requests_message(), option=None)


def _classify(exc: BaseException) -> str:
    """Map a requests exception onto an error kind."""
    if not HAS_REQUESTS:  # pragma: no cover
        return "connection"
    exc_mod = requests.exceptions
    if isinstance(exc, exc_mod.SSLError):
        return "tls"
    if isinstance(exc, exc_mod.Timeout):  # ConnectTimeout and ReadTimeout
        return "timeout"
    if isinstance(exc, (exc_mod.ConnectionError, exc_mod.ChunkedEncodingError)):
        return "connection"
    return "protocol"


def _describe_exception(exc: BaseException, url: str) -> str:
    # requests' messages carry the URL (maybe with credentials) but never request headers.
    # Its ConnectionError wraps urllib3's retry error; the reason inside is the readable part.
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    text = f"{type(exc).__name__}: {reason if reason is not None else exc}"
    if url != redact_url(url):
        text = text.replace(url, redact_url(url))
    return text[:300]


class _Pacer:
    """Spreads requests evenly at ``rate`` per second over all workers (None: as fast as possible)."""

    def __init__(self, rate: Optional[float]) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def slot(self) -> float:
        """The monotonic time this request may start at."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            # A worker late by more than one interval does not earn a burst to catch up.
            at = max(now, self._next)
            self._next = at + self.interval
            return at


class TrafficSampler:
    """Sends requests with ``concurrency`` worker threads (one keep-alive Session each) and aggregates them."""

    def __init__(self, config: SamplerConfig) -> None:
        require_requests()
        self.config = config.validate()
        self._stop = threading.Event()
        self._examples: Dict[str, str] = {}
        self._examples_lock = threading.Lock()

    def stop(self) -> None:
        """Ask a running ``run``/``collect`` to finish after the requests in flight."""
        self._stop.set()

    def run(self, requests: Optional[int] = None, duration: Optional[float] = None) -> TrafficReport:  # noqa: A002
        """Send ``requests`` requests, or keep sending for ``duration`` seconds (one of the two)."""
        if (requests is None) == (duration is None):
            raise TrafficError("give exactly one of requests (a count) or duration (seconds).", "requests")
        if requests is not None:
            requests = int(validate_number(requests, "requests", int, 1, hint="Ask for 1 or more requests."))
            if requests > 10_000_000:
                raise TrafficError(f"requests {requests} is above the limit of 10000000.", "requests")
        if duration is not None:
            duration = float(validate_number(duration, "duration", float, 0.0, inclusive=False,
                                             hint="Give the sampling time in seconds, such as 10."))
            if duration > 86400:
                raise TrafficError("duration is above the limit of 86400 seconds.", "duration")
        samples, elapsed = self.collect(requests=requests, duration=duration)
        return TrafficReport.from_samples(self.config, samples, elapsed, self.error_examples)

    @property
    def error_examples(self) -> Dict[str, str]:
        with self._examples_lock:
            return dict(self._examples)

    def collect(self, requests: Optional[int] = None, duration: Optional[float] = None,  # noqa: A002
                on_sample: Optional[Callable[[Sample], None]] = None,
                origin: Optional[float] = None) -> Tuple[List[Sample], float]:
        """Run the workers and return (samples, elapsed seconds); stops on count, duration or ``stop()``.

        With neither ``requests`` nor ``duration`` it runs until ``stop()``. ``origin`` is the
        ``time.perf_counter()`` sample start offsets are measured from (default: now).
        """
        config = self.config
        t0 = time.perf_counter() if origin is None else origin
        started = time.perf_counter()
        deadline = started + duration if duration is not None else None
        remaining = [requests]
        claim_lock = threading.Lock()
        pacer = _Pacer(config.rate)

        def claim() -> bool:
            if self._stop.is_set():
                return False
            if deadline is not None and time.perf_counter() >= deadline:
                return False
            if remaining[0] is None:
                return True
            with claim_lock:
                if remaining[0] <= 0:
                    return False
                remaining[0] -= 1
                return True

        results: List[List[Sample]] = [[] for _worker in range(config.concurrency)]
        failures: List[BaseException] = []
        workers = min(config.concurrency, requests) if requests is not None else config.concurrency
        threads = [threading.Thread(target=self._worker, name=f"traffic-sampler-{i}", daemon=True,
                                    args=(claim, pacer, deadline, t0, results[i], on_sample, failures))
                   for i in range(workers)]
        with warnings.catch_warnings():
            if not config.validate_certs:
                # The user turned verification off on purpose; one warning per request would drown the output.
                warnings.simplefilter("ignore")
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.2)
            except BaseException:
                self._stop.set()
                raise
        elapsed = time.perf_counter() - started
        if failures:
            if isinstance(failures[0], TrafficError):
                raise failures[0]
            raise TrafficError(f"the traffic sampler failed unexpectedly: {failures[0]!r}")
        merged = [s for chunk in results for s in chunk]
        merged.sort(key=lambda s: s.start)
        return merged, elapsed

    def _new_session(self) -> "requests.Session":
        session = requests.Session()
        # One connection per worker is all a serial worker needs; no retries, a retry would hide an error
        # the curl watcher would have seen.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self.config.headers)
        # No proxies from the environment: the point is to see what the target itself answers.
        session.trust_env = False
        session.verify = (self.config.ca_path or True) if self.config.validate_certs else False
        return session

    def _note_example(self, kind: str, text: str) -> None:
        with self._examples_lock:
            self._examples.setdefault(kind, text)

    def _worker(self, claim: Callable[[], bool], pacer: _Pacer, deadline: Optional[float], t0: float,
                out: List[Sample], on_sample: Optional[Callable[[Sample], None]],
                failures: List[BaseException]) -> None:
        config = self.config
        matcher = config.status_matcher
        reader = config.version_reader
        method, url, timeout = config.method, config.url, config.timeout
        stop = self._stop
        try:
            session = self._new_session()
        except Exception as exc:  # a bad ca_path and the like
            failures.append(exc)
            return
        append = out.append
        perf = time.perf_counter
        verify = session.verify
        try:
            # Prepared once: Session.send skips the per-call merge and prepare work (about 1.5x the
            # throughput), and no cookie picked up from an answer is sent back, as with a curl loop; a
            # load balancer's sticky cookie would otherwise pin each worker to one backend.
            prepared = session.prepare_request(requests.Request(method, url))
        except requests.exceptions.RequestException as exc:
            failures.append(TrafficError(f"url {redact_url(url)!r} cannot be requested: {exc}", "url"))
            session.close()
            return
        except Exception as exc:
            failures.append(exc)
            session.close()
            return
        try:
            while claim():
                at = pacer.slot()
                if at:
                    delay = at - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                    if deadline is not None and perf() >= deadline:
                        break
                begin = perf()
                try:
                    response = session.send(prepared, timeout=timeout, allow_redirects=False, verify=verify,
                                            proxies={}, stream=False, cert=None)
                    body = response.content
                except (requests.exceptions.InvalidURL, LocationParseError) as exc:
                    failures.append(TrafficError(f"url {redact_url(url)!r} cannot be requested: {exc}", "url"))
                    return
                except requests.exceptions.RequestException as exc:
                    kind = _classify(exc)
                    self._note_example(kind, _describe_exception(exc, url))
                    sample = Sample(begin - t0, None, None, kind, None)
                else:
                    latency = perf() - begin
                    status = response.status_code
                    version = reader.read(response.headers, body)
                    error = None
                    if not matcher(status):
                        error = "status"
                        self._note_example("status", f"HTTP {status} {response.reason or ''}".strip())
                    sample = Sample(begin - t0, latency, status, error, version)
                append(sample)
                if on_sample is not None:
                    on_sample(sample)
        except Exception as exc:  # never let a worker die silently
            failures.append(exc)
        finally:
            session.close()
