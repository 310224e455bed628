# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch mode: a background ``TrafficRecorder`` and the per-second timeline it returns.

``TrafficRecorder(config, rate=...)`` with ``start()`` / ``stop()`` -> the timeline (``build_timeline``): per-second
buckets of versions, errors and latency plus the overall report, plain JSON data. ``timeline_svg.py`` draws it.
Used by the tests, the benchmarks and ``tools/traffic_watch.py``.
"""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import (
    SamplerConfig,
    TrafficError,
    redact_url,
    validate_number,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.report import (
    UNKNOWN_VERSION,
    Sample,
    TrafficReport,
    percentile,
    to_ms,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.sampler import TrafficSampler


def build_timeline(samples: Sequence[Sample], config: SamplerConfig, started_at: float, elapsed: float,
                   error_examples: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Per-second buckets (by request start) of versions, errors and latency, plus the overall report.

    ``span_s`` is how much of its second a bucket covers (less than 1 only for the last one).
    """
    seconds = max(1, int(math.ceil(elapsed - 1e-9))) if elapsed > 0 else 1
    buckets: List[Dict[str, Any]] = []
    latencies: List[List[float]] = [[] for _second in range(seconds)]
    for second in range(seconds):
        span = round(min(1.0, elapsed - second), 3) if elapsed > 0 else 1.0
        buckets.append({"t": second, "span_s": span, "requests": 0, "ok": 0, "errors": 0, "error_kinds": {}, "versions": {},
                        "p50_ms": None, "p95_ms": None, "max_ms": None})
    for sample in samples:
        index = min(max(int(sample.start), 0), seconds - 1)
        bucket = buckets[index]
        bucket["requests"] += 1
        if sample.error:
            bucket["errors"] += 1
            bucket["error_kinds"][sample.error] = bucket["error_kinds"].get(sample.error, 0) + 1
        else:
            bucket["ok"] += 1
        if sample.status is not None:
            version = sample.version or UNKNOWN_VERSION
            bucket["versions"][version] = bucket["versions"].get(version, 0) + 1
            if sample.latency is not None:
                latencies[index].append(sample.latency)
    for bucket, values in zip(buckets, latencies):
        values.sort()
        bucket["p50_ms"] = to_ms(percentile(values, 50))
        bucket["p95_ms"] = to_ms(percentile(values, 95))
        bucket["max_ms"] = to_ms(values[-1] if values else None)
    report = TrafficReport.from_samples(config, samples, elapsed, error_examples)
    return {
        "url": redact_url(config.url),
        "started_at": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="milliseconds"),
        "duration_s": round(elapsed, 3),
        "rate": config.rate,
        "concurrency": config.concurrency,
        "summary": report.to_dict(),
        "seconds": buckets,
    }


class TrafficRecorder:
    """Samples in a background thread from ``start()`` to ``stop()`` and returns a per-second timeline.

    ``rate`` (requests per second over all workers, default 20) keeps the watcher light on the service;
    ``concurrency`` workers keep that rate up when answers are slow. ``max_duration`` stops a
    forgotten recorder by itself.
    """

    def __init__(self, config: SamplerConfig, rate: float = 20.0, max_duration: float = 3600.0) -> None:
        # A recorder keeps every sample until stop(): an unlimited rate over an hour would fill memory.
        if rate is None:
            raise TrafficError("rate is required for a recorder: give requests per second, such as 20.", "rate")
        config.rate = float(validate_number(rate, "rate", float, 0.0, inclusive=False,
                                            hint="Give requests per second, such as 20."))
        if config.rate > 5000:
            raise TrafficError(f"rate {rate} is above the recorder's limit of 5000 requests per second.", "rate")
        self.sampler = TrafficSampler(config)
        self.config = self.sampler.config
        self.max_duration = float(validate_number(max_duration, "max_duration", float, 0.0, inclusive=False,
                                                  hint="Give the longest recording in seconds, such as 3600."))
        if self.max_duration > 86400:
            raise TrafficError("max_duration is above the limit of 86400 seconds.", "max_duration")
        self._thread: Optional[threading.Thread] = None
        self._samples: List[Sample] = []
        self._elapsed = 0.0
        self._started_wall = 0.0
        self._error: Optional[BaseException] = None
        self._live: List[Sample] = []
        self._live_lock = threading.Lock()

    def start(self) -> "TrafficRecorder":
        """Begin recording in a background thread; returns self."""
        if self._thread is not None:
            raise TrafficError("this recorder was already started; make a new one for a new recording.")
        self._started_wall = time.time()
        origin = time.perf_counter()

        def record() -> None:
            try:
                self._samples, self._elapsed = self.sampler.collect(
                    duration=self.max_duration, on_sample=self._on_sample, origin=origin)
            except BaseException as exc:  # surfaced by stop()
                self._error = exc

        self._thread = threading.Thread(target=record, name="traffic-recorder", daemon=True)
        self._thread.start()
        return self

    def _on_sample(self, sample: Sample) -> None:
        with self._live_lock:
            self._live.append(sample)

    def snapshot(self) -> List[Sample]:
        """The samples recorded so far (while running)."""
        with self._live_lock:
            return list(self._live)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the recorder stops by itself (max_duration); True if it has stopped."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Stop recording (requests in flight finish, bounded by the request timeout) and return the timeline."""
        if self._thread is None:
            raise TrafficError("the recorder was never started.")
        self.sampler.stop()
        self._thread.join(timeout if timeout is not None else self.config.timeout + 5.0)
        if self._thread.is_alive():
            raise TrafficError("the recorder did not stop in time; a request is still hanging.")
        if self._error is not None:
            if isinstance(self._error, TrafficError):
                raise self._error
            raise TrafficError(f"the recorder failed: {self._error!r}")
        return build_timeline(self._samples, self.config, self._started_wall, self._elapsed,
                              self.sampler.error_examples)
