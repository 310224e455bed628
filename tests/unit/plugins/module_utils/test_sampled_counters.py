"""analysis.sample: per-member counters from requests sent to each member directly (nginx keeps none)."""
from __future__ import annotations

import http.server
import socket
import threading

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.analysis import FAIL, PASS, Thresholds, analyse
from ansible_collections.zerodown.rollout.plugins.module_utils.progressive import StepRunner, parse_steps
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput
from ansible_collections.zerodown.rollout.plugins.module_utils.sampled_counters import SampledCounters, sample_settings


class _Every(http.server.BaseHTTPRequestHandler):
    """Answers 500 to every ``fail_every``-th request (0: never), 200 otherwise; counts the paths asked."""

    fail_every = 0
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append(self.path)
        bad = self.fail_every and len(type(self).seen) % self.fail_every == 0
        body = b"no" if bad else b"ok"
        self.send_response(500 if bad else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _server(fail_every):
    handler = type("Handler", (_Every,), {"fail_every": fail_every, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.fixture
def pool():
    good, good_handler = _server(0)
    flaky, flaky_handler = _server(4)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))   # bound, never listening: connections are refused
    yield {"old": f"127.0.0.1:{good.server_address[1]}", "new": f"127.0.0.1:{flaky.server_address[1]}",
           "gone": f"127.0.0.1:{closed.getsockname()[1]}"}, good_handler, flaky_handler
    good.shutdown()
    flaky.shutdown()
    closed.close()


def test_the_first_read_is_zero_and_each_later_read_samples_every_member(pool):
    targets, good, flaky = pool
    sample = SampledCounters(targets, "/version", requests=8, timeout=2)
    first = sample.counters()
    assert {n: c.requests + c.connection_errors for n, c in first.items()} == {"old": 0, "new": 0, "gone": 0}
    assert good.seen == [] and flaky.seen == []
    second = sample.counters()
    assert good.seen == ["/version"] * 8 and len(flaky.seen) == 8
    assert (second["old"].requests, second["old"].responses_5xx) == (8, 0)
    assert (second["new"].requests, second["new"].responses_5xx) == (8, 2)       # every 4th answer is a 500
    assert (second["gone"].requests, second["gone"].connection_errors) == (0, 8)
    assert second["old"].response_ms is not None and second["gone"].response_ms is None
    third = sample.counters()   # cumulative, as HAProxy's counters are
    assert (third["new"].requests, third["new"].responses_5xx) == (16, 4)


def test_the_sample_judges_like_the_load_balancers_counters(pool):
    targets, _good, _flaky = pool
    sample = SampledCounters({"n": targets["new"], "o": targets["old"]}, "/", requests=20, timeout=2)
    before = sample.counters()
    verdict = analyse(before, sample.counters(), ["n"], ["o"], Thresholds(max_error_rate=0.05, min_requests=20))
    assert verdict.status == FAIL and verdict.new.responses_5xx == 5 and verdict.baseline.errors == 0
    healthy = SampledCounters({"n": targets["old"], "o": targets["old"]}, "/", requests=20, timeout=2)
    before = healthy.counters()
    assert analyse(before, healthy.counters(), ["n"], ["o"], Thresholds(min_requests=20)).status == PASS


def test_a_step_runner_reads_the_sample_instead_of_the_balancer(pool):
    targets, _good, _flaky = pool

    class Uncounted:
        MAX_WEIGHT = 256
        weights: list = []

        def set_weights(self, weights):
            self.weights.append(dict(weights))
            return []

        def counters(self):
            return None   # as nginx: no per-server counters

        def describe(self):
            return "nginx upstream"

    now = [0.0]
    sample = SampledCounters({"n": targets["new"], "o": targets["old"]}, "/", requests=10, timeout=2)
    runner = StepRunner(Uncounted(), ["n"], ["o"], Thresholds(max_error_rate=0.05, min_requests=20), 1.0, "pause",
                        [].append, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s),
                        counters=sample.counters)
    outcome = runner.run(parse_steps([{"weight": 10, "duration": 5}]), 0)
    # 10 requests a read: the second read reaches min_requests with 5 of 20 failed
    assert outcome.state == "failed" and now[0] == 2.0, outcome
    assert outcome.records[0].verdict["new"]["responses_5xx"] == 5


@pytest.mark.parametrize("params, said", [
    ({}, "analysis.sample.path must be the path"),
    ({"path": "version"}, "starting with '/'"),
    ({"path": "/v", "requests": 0}, "analysis.sample.requests must be 1 or more"),
    ({"path": "/v", "timeout": 0}, "analysis.sample.timeout must be more than 0"),
])
def test_bad_sample_options_are_refused(params, said):
    with pytest.raises(InvalidInput, match=said):
        sample_settings(params)


def test_sample_settings_defaults_and_explicit_values():
    assert sample_settings(None) is None
    assert sample_settings({"path": "/v"}) == ("/v", 10, 2.0)
    assert sample_settings({"path": "/v", "requests": 1, "timeout": 0.5}) == ("/v", 1, 0.5)
