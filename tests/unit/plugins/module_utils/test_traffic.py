"""The HTTP traffic sampler against real scripted servers on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import time
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils import traffic
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic import (
    SamplerConfig,
    StatusMatcher,
    Thresholds,
    TrafficError,
    TrafficRecorder,
    TrafficReport,
    TrafficSampler,
    VersionReader,
    evaluate,
    percentile,
    redact_url,
    render_timeline_svg,
)
from tests.support.traffic_servers import Reply, ScriptedServer, self_signed_cert, tls_context


def sample(url: str, requests: int = None, duration: float = None, **options) -> TrafficReport:
    return TrafficSampler(SamplerConfig(url=url, **options)).run(requests=requests, duration=duration)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- percentile (nearest rank) --------------------------------------------------------------------

def test_percentile_nearest_rank_on_1_to_100():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1


def test_percentile_small_samples_pick_an_observed_value():
    assert percentile([7.0], 95) == 7.0
    ten = [float(v) for v in range(10, 110, 10)]  # 10..100
    assert percentile(ten, 50) == 50  # rank ceil(5) = 5
    assert percentile(ten, 95) == 100  # rank ceil(9.5) = 10
    assert percentile(ten, 51) == 60  # rank ceil(5.1) = 6
    twenty = [1.0] * 19 + [9.0]
    assert percentile(twenty, 95) == 1.0  # rank 19: one outlier in 20 is beyond p95
    assert percentile(twenty, 99) == 9.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# --- option parsing ---------------------------------------------------------------------------------

def test_status_matcher_codes_and_classes():
    matcher = StatusMatcher(["2xx", 301, "404"])
    assert matcher(200) and matcher(299) and matcher(301) and matcher(404)
    assert not matcher(302) and not matcher(500)
    assert matcher.describe() == ["2xx", "301", "404"]
    assert StatusMatcher()(204) and not StatusMatcher()(304)


@pytest.mark.parametrize("bad", [["abc"], [700], [99], ["6xx"], [True], []])
def test_status_matcher_refuses_bad_statuses(bad):
    with pytest.raises(TrafficError) as err:
        StatusMatcher(bad)
    assert err.value.option == "expected_status"


def test_version_reader_json_path_header_and_regex():
    body = json.dumps({"version": "1.0", "build": {"version": 2, "tags": ["a", "b"]}}).encode()
    assert VersionReader().read({}, body) == "1.0"
    assert VersionReader(json_path="build.version").read({}, body) == "2"
    assert VersionReader(json_path="build.tags.1").read({}, body) == "b"
    assert VersionReader(json_path="build.tags.5").read({}, body) is None
    assert VersionReader(json_path="build").read({}, body) is None  # an object is not a version
    assert VersionReader(json_path="missing").read({}, body) is None
    assert VersionReader().read({}, b"<html>not json</html>") is None
    assert VersionReader(header="X-App-Version").read({"X-App-Version": " 3.1 "}, b"") == "3.1"
    assert VersionReader(header="X-App-Version").read({}, b"") is None
    assert VersionReader(regex=r"version: (\S+?)<").read({}, b"<p>version: 4.2</p>") == "4.2"
    assert VersionReader(regex=r"v\d+\.\d+").read({}, b"running v5.0 now") == "v5.0"
    assert VersionReader(regex=r"version: (\S+)").read({}, b"nothing here") is None


def test_version_reader_refuses_bad_settings():
    with pytest.raises(TrafficError) as err:
        VersionReader(regex="(unclosed")
    assert err.value.option == "version_regex" and "regular expression" in str(err.value)
    with pytest.raises(TrafficError) as err:
        VersionReader(header="X-Version", regex="v(.*)")
    assert "only one of" in str(err.value)
    with pytest.raises(TrafficError) as err:
        VersionReader(json_path="a..b")
    assert err.value.option == "version_json_path"
    with pytest.raises(TrafficError) as err:
        VersionReader(header="Bad Header")
    assert err.value.option == "version_header"


@pytest.mark.parametrize("options, option", [
    ({"url": "ftp://127.0.0.1/"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "http://127.0.0.1:99999/"}, "url"),
    ({"url": "http://127.0.0.1:0/"}, "url"),
    ({"url": ""}, "url"),
    ({"url": "http://127.0.0.1/", "concurrency": 0}, "concurrency"),
    ({"url": "http://127.0.0.1/", "concurrency": -3}, "concurrency"),
    ({"url": "http://127.0.0.1/", "concurrency": 1.5}, "concurrency"),
    ({"url": "http://127.0.0.1/", "timeout": 0}, "timeout"),
    ({"url": "http://127.0.0.1/", "timeout": -1}, "timeout"),
    ({"url": "http://127.0.0.1/", "rate": 0}, "rate"),
    ({"url": "http://127.0.0.1/", "method": "GET /"}, "method"),
    ({"url": "http://127.0.0.1/", "headers": "Authorization: x"}, "headers"),
    ({"url": "http://127.0.0.1/", "headers": {"Bad Name": "x"}}, "headers"),
    ({"url": "http://127.0.0.1/", "expected_status": ["2xx", "abc"]}, "expected_status"),
    ({"url": "http://127.0.0.1/", "version_regex": "["}, "version_regex"),
])
def test_config_refuses_malformed_options(options, option):
    with pytest.raises(TrafficError) as err:
        SamplerConfig(**options).validate()
    assert err.value.option == option
    assert option in str(err.value)


def test_header_values_never_appear_in_errors():
    secret = "Bearer top-secret-token"
    for headers in ({"Authorization": secret + "\r\nX-Injected: 1"}, {"Authorization": [secret]}):
        with pytest.raises(TrafficError) as err:
            SamplerConfig(url="http://127.0.0.1/", headers=headers).validate()
        assert "Authorization" in str(err.value)
        assert "top-secret" not in str(err.value)


def test_run_refuses_bad_counts():
    sampler = TrafficSampler(SamplerConfig(url="http://127.0.0.1:9/"))
    for kwargs, option in (({"requests": -1}, "requests"), ({"requests": 0}, "requests"),
                           ({"duration": 0}, "duration"), ({}, "requests"),
                           ({"requests": 5, "duration": 1.0}, "requests")):
        with pytest.raises(TrafficError) as err:
            sampler.run(**kwargs)
        assert err.value.option == option


@pytest.mark.parametrize("url", ["http://.example/", "http://exa mple/", "http://a" + "b" * 70 + ".test/"])
def test_unrequestable_urls_are_refused(url):
    with pytest.raises(TrafficError) as err:
        sample(url, requests=2, timeout=1)
    assert err.value.option == "url" and "cannot be requested" in str(err.value)


def test_cookies_from_answers_are_not_sent_back():
    # a sticky-session cookie would pin each worker to one backend and skew the version mix
    with ScriptedServer(lambda i, p: Reply(version="1.0", headers={"Set-Cookie": f"backend=b{i}; Path=/"})) as srv:
        report = sample(srv.url(), requests=20, concurrency=2)
        seen = list(srv.seen_headers)
    assert report.errors == 0 and len(seen) == 20
    assert not any("Cookie" in headers for headers in seen)


def test_redact_url_hides_passwords_only():
    assert redact_url("http://user:pw@127.0.0.1:8080/x?y=1") == "http://user:********@127.0.0.1:8080/x?y=1"
    assert redact_url("http://127.0.0.1/") == "http://127.0.0.1/"


# --- sampling real servers --------------------------------------------------------------------------

def version_mix_plan(where: str):
    # Four-request cycle: 1.0, 1.0, 1.0, 2.0 (75/25); every 5th request reports no version at all.
    def plan(i: int, path: str) -> Reply:
        if i % 5 == 4:
            return Reply(version=None, where=where)
        return Reply(version="2.0" if i % 4 == 3 else "1.0", where=where)
    return plan


@pytest.mark.parametrize("where, options", [
    ("json", {}),
    ("json", {"version_json_path": "build.version"}),
    ("header", {"version_header": "X-App-Version"}),
    ("body", {"version_regex": r"version: ([\w.]+)"}),
])
def test_version_mix_is_counted_exactly(where, options):
    with ScriptedServer(version_mix_plan(where)) as server:
        report = sample(server.url("/version"), requests=200, concurrency=4, **options)
    expected = {"1.0": 0, "2.0": 0, "unknown": 0}
    for i in range(200):
        key = "unknown" if i % 5 == 4 else ("2.0" if i % 4 == 3 else "1.0")
        expected[key] += 1
    assert report.total == report.responses == report.ok == 200
    assert report.errors == 0 and report.error_rate == 0.0
    assert report.versions == expected
    assert sum(report.versions.values()) == 200
    fractions = report.to_dict()["version_fractions"]
    assert fractions == {v: n / 200 for v, n in expected.items()}
    assert report.status_counts == {"200": 200}
    assert server.count == 200


def test_connections_are_reused_per_worker():
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        report = sample(server.url(), requests=120, concurrency=3)
    assert report.total == 120 and report.errors == 0
    assert server.connections == 3  # one keep-alive connection per worker


def test_server_errors_in_known_proportion():
    def plan(i: int, path: str) -> Reply:
        return Reply(status=500 if i % 10 == 9 else 200, version="1.0")
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=300, concurrency=4)
    assert report.status_counts == {"200": 270, "500": 30}
    assert report.errors == 30 and report.error_kinds == {"status": 30}
    assert report.error_rate == pytest.approx(0.1)
    assert report.ok == 270 and report.responses == 300
    assert report.error_examples["status"].startswith("HTTP 500")
    # 500s still carry a version: the version mix covers every answer
    assert report.versions == {"1.0": 300}

    assert evaluate(report, Thresholds(max_error_rate=0.05)).verdict == "fail"
    verdict = evaluate(report, Thresholds(max_error_rate=0.1))
    assert verdict.verdict == "pass" and verdict.reasons == []
    failed = evaluate(report, Thresholds())  # default: zero errors allowed
    assert failed.verdict == "fail"
    assert failed.reasons == ["error rate 10.00% (30/300: status=30) is above max_error_rate 0.00%"]


def test_expected_status_accepts_listed_codes():
    def plan(i: int, path: str) -> Reply:
        return Reply(status=503 if i % 2 else 204, version="1.0")
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=40, expected_status=["2xx", 503])
    assert report.errors == 0 and report.status_counts == {"204": 20, "503": 20}


def test_redirects_are_reported_not_followed():
    def plan(i: int, path: str) -> Reply:
        return Reply(status=302, headers={"Location": "/elsewhere"})
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=20)
        assert server.count == 20
    assert report.status_counts == {"302": 20} and report.error_kinds == {"status": 20}


@pytest.mark.parametrize("reset", [False, True])
def test_abrupt_closes_are_connection_errors(reset):
    # Every 5th request: the server reads it and drops the connection without an answer.
    def plan(i: int, path: str) -> Reply:
        return Reply(version="1.0", abrupt=i % 5 == 4, reset=reset and i % 5 == 4)
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=100, concurrency=2)
        assert server.count == 100  # no retries: each drop is seen, as the curl loop would see it
    assert report.total == 100
    assert report.error_kinds == {"connection": 20}
    assert report.responses == 80 and report.versions == {"1.0": 80}
    assert report.error_rate == pytest.approx(0.2)
    assert "connection" in report.error_examples


def test_connection_refused_fails_the_verdict():
    report = sample(f"http://127.0.0.1:{closed_port()}/", requests=12, concurrency=2)
    assert report.error_kinds == {"connection": 12} and report.responses == 0
    assert report.latency_ms["p95"] is None
    verdict = evaluate(report, Thresholds(expect_version="2.0", max_p95_ms=100))
    assert verdict.verdict == "fail"
    assert any("never seen" in r for r in verdict.reasons)
    assert any("p95 latency is unknown" in r for r in verdict.reasons)


def test_slow_answers_set_the_percentiles():
    # 20 sequential requests, two of them (10%) take 0.25 s: nearest-rank p95 is rank 19 -> slow,
    # p50 is fast.
    def plan(i: int, path: str) -> Reply:
        return Reply(version="1.0", delay=0.25 if i in (3, 11) else 0.0)
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=20, concurrency=1)
    lat = report.latency_ms
    assert lat["p50"] < 100
    assert lat["p95"] >= 250 and lat["p99"] >= 250 and lat["max"] >= 250
    assert lat["max"] < 2000
    assert evaluate(report, Thresholds(max_p95_ms=200)).verdict == "fail"
    assert evaluate(report, Thresholds(max_p95_ms=5000)).verdict == "pass"


def test_a_single_slow_answer_in_twenty_is_beyond_p95():
    def plan(i: int, path: str) -> Reply:
        return Reply(version="1.0", delay=0.25 if i == 7 else 0.0)
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=20, concurrency=1)
    assert report.latency_ms["p95"] < 100
    assert report.latency_ms["p99"] >= 250


def test_uniform_delay_is_the_median():
    with ScriptedServer(lambda i, p: Reply(version="1.0", delay=0.1)) as server:
        report = sample(server.url(), requests=10, concurrency=5)
    assert 100 <= report.latency_ms["p50"] < 1000
    assert report.latency_ms["p50"] <= report.latency_ms["p95"] <= report.latency_ms["p99"] <= report.latency_ms["max"]


def test_timeouts_are_counted():
    def plan(i: int, path: str) -> Reply:
        return Reply(version="1.0", delay=1.0 if i % 10 == 0 else 0.0)
    with ScriptedServer(plan) as server:
        report = sample(server.url(), requests=30, concurrency=3, timeout=0.3)
    assert report.error_kinds == {"timeout": 3}
    assert report.responses == 27
    assert report.latency_ms["max"] < 300  # timed-out requests have no latency


def test_duration_mode_and_throughput_figures():
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        report = sample(server.url(), duration=0.6, concurrency=2)
        served = server.count
    assert report.total == served > 10
    assert 0.6 <= report.duration_s < 3
    assert report.requests_per_s == pytest.approx(report.total / report.duration_s, rel=0.01)


def test_rate_limit_spreads_requests():
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        report = sample(server.url(), duration=1.0, concurrency=4, rate=20)
    assert 15 <= report.total <= 22


def test_headers_and_method_are_sent():
    with ScriptedServer(lambda i, p: Reply(version="9.9", where="header")) as server:
        report = sample(server.url(), requests=10, method="head", version_header="X-App-Version",
                        headers={"Authorization": "Bearer abc", "X-Probe": 1})
        seen = server.seen_headers[0]
    assert report.versions == {"9.9": 10}
    assert seen["Authorization"] == "Bearer abc" and seen["X-Probe"] == "1"
    assert "Authorization" not in json.dumps(report.to_dict())


def test_tls_verified_by_default(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with ScriptedServer(lambda i, p: Reply(version="1.0"), tls_context=tls_context(cert, key)) as server:
        untrusted = sample(server.url(), requests=10, concurrency=2)
        trusted = sample(server.url(), requests=10, ca_path=str(cert))
        unverified = sample(server.url(), requests=10, validate_certs=False)
    assert untrusted.error_kinds == {"tls": 10} and untrusted.responses == 0
    assert trusted.errors == 0 and trusted.versions == {"1.0": 10}
    assert unverified.errors == 0 and unverified.versions == {"1.0": 10}


# --- verdicts ----------------------------------------------------------------------------------------

def make_report(total=100, errors=0, versions=None, p95=5.0, responses=None) -> TrafficReport:
    versions = versions if versions is not None else {"2.0": total}
    responses = sum(versions.values()) if responses is None else responses
    return TrafficReport(url="http://x/", total=total, responses=responses, ok=total - errors,
                         status_counts={}, errors=errors, error_kinds={"status": errors} if errors else {},
                         error_examples={}, versions=versions,
                         latency_ms={"p50": 1.0, "p95": p95, "p99": p95, "max": p95, "mean": 1.0},
                         duration_s=1.0, requests_per_s=float(total), concurrency=1, version_source="json version",
                         expected_status=["2xx"])


def test_too_few_samples_is_inconclusive_never_pass():
    verdict = evaluate(make_report(total=5), Thresholds(min_samples=10))
    assert verdict.verdict == "inconclusive"
    assert "fewer than min_samples=10" in verdict.reasons[0]
    # even when every other number would fail, too few samples says nothing either way
    assert evaluate(make_report(total=5, errors=5), Thresholds(min_samples=10)).verdict == "inconclusive"
    assert evaluate(make_report(total=10), Thresholds(min_samples=10)).verdict == "pass"


def test_expect_version_fraction():
    report = make_report(total=100, versions={"2.0": 96, "1.0": 4})
    assert evaluate(report, Thresholds(expect_version="2.0")).verdict == "fail"  # default: all of them
    assert evaluate(report, Thresholds(expect_version="2.0", min_version_fraction=0.95)).verdict == "pass"
    verdict = evaluate(report, Thresholds(expect_version="2.0", min_version_fraction=0.97))
    assert verdict.verdict == "fail"
    assert verdict.reasons == ["version '2.0' answered 96.00% of 100 responses (2.0=96, 1.0=4), "
                               "below min_version_fraction 97.00%"]
    check = [c for c in verdict.checks if c["name"] == "expect_version"][0]
    assert check == {"name": "expect_version", "ok": False, "actual": 0.96, "limit": 0.97}


def test_answers_without_a_readable_version_say_where_it_was_looked_for_and_how_to_point_it():
    report = make_report(total=10, versions={"unknown": 10})
    verdict = evaluate(report, Thresholds(expect_version="2.0"))
    assert verdict.verdict == "fail"
    reason = verdict.reasons[0]
    assert "(unknown=10)" in reason
    assert "10 of them reported no version readable at json version" in reason
    assert "version_json_path (a dotted JSON path), version_header (a response header) or version_regex" in reason
    mixed = evaluate(make_report(total=10, versions={"2.0": 10}), Thresholds(expect_version="1.0"))
    assert "readable" not in mixed.reasons[0]  # every answer had a version: nothing to point elsewhere


def test_several_failed_checks_give_several_reasons():
    report = make_report(total=100, errors=3, versions={"1.0": 100}, p95=900.0)
    verdict = evaluate(report, Thresholds(max_error_rate=0.01, expect_version="2.0", max_p95_ms=300))
    assert verdict.verdict == "fail" and len(verdict.reasons) == 3
    assert [c["ok"] for c in verdict.checks] == [True, False, False, False]


@pytest.mark.parametrize("kwargs, option", [
    ({"max_error_rate": 1.5}, "max_error_rate"),
    ({"max_error_rate": -0.1}, "max_error_rate"),
    ({"min_version_fraction": 0.5}, "min_version_fraction"),  # without expect_version
    ({"expect_version": "2", "min_version_fraction": 2}, "min_version_fraction"),
    ({"max_p95_ms": 0}, "max_p95_ms"),
    ({"min_samples": 0}, "min_samples"),
])
def test_thresholds_refuse_bad_values(kwargs, option):
    with pytest.raises(TrafficError) as err:
        Thresholds(**kwargs).validate()
    assert err.value.option == option


# --- argument specs for modules ----------------------------------------------------------------------

def fragment_options(attribute: str) -> dict:
    import yaml
    from ansible_collections.zerodown.rollout.plugins.doc_fragments.traffic import ModuleDocFragment
    return yaml.safe_load(getattr(ModuleDocFragment, attribute))["options"]


@pytest.mark.parametrize("attribute, spec", [("DOCUMENTATION", traffic.SAMPLER_ARGUMENT_SPEC),
                                             ("THRESHOLDS", traffic.THRESHOLDS_ARGUMENT_SPEC)])
def test_argument_specs_match_the_doc_fragment(attribute, spec):
    documented = fragment_options(attribute)
    assert set(documented) == set(spec)
    for name, doc in documented.items():
        assert doc["type"] == spec[name]["type"], name
        assert doc.get("default") == spec[name].get("default"), name
        assert doc.get("elements") == spec[name].get("elements"), name


def test_params_helpers_build_validated_objects():
    params = {name: spec.get("default") for name, spec in traffic.SAMPLER_ARGUMENT_SPEC.items()}
    params.update(version_header="X-App-Version", concurrency=2)
    config = traffic.sampler_config_from_params("http://127.0.0.1:8080/", params)
    assert config.concurrency == 2 and config.version_reader.describe() == "header X-App-Version"
    with pytest.raises(TrafficError) as err:
        traffic.sampler_config_from_params("http://127.0.0.1:8080/", dict(params, concurrency=0))
    assert err.value.option == "concurrency"
    thresholds = traffic.thresholds_from_params({"expect_version": "2.0", "max_p95_ms": 300})
    assert (thresholds.max_error_rate, thresholds.min_samples, thresholds.max_p95_ms) == (0.0, 10, 300.0)


# --- watch mode --------------------------------------------------------------------------------------

def test_recorder_timeline_and_svg():
    # An "upgrade" by request count: 30 answers from 1.0, 10 failures, then 2.0.
    def plan(i: int, path: str) -> Reply:
        if i < 30:
            return Reply(version="1.0")
        if i < 40:
            return Reply(status=503, version=None, where="none")
        return Reply(version="2.0", delay=0.02)

    with ScriptedServer(plan) as server:
        recorder = TrafficRecorder(SamplerConfig(url=server.url(), concurrency=1), rate=50).start()
        deadline = time.monotonic() + 10
        while len(recorder.snapshot()) < 90 and time.monotonic() < deadline:
            time.sleep(0.05)
        timeline = recorder.stop()
        served = server.count
    summary = timeline["summary"]
    assert summary["total"] == served >= 90
    assert summary["status_counts"]["503"] == 10
    assert summary["versions"]["1.0"] == 30 and summary["versions"]["unknown"] == 10
    assert summary["versions"]["2.0"] == served - 40
    seconds = timeline["seconds"]
    assert len(seconds) == int(-(-timeline["duration_s"] // 1))
    assert [b["t"] for b in seconds] == list(range(len(seconds)))
    assert sum(b["requests"] for b in seconds) == served
    assert sum(b["errors"] for b in seconds) == 10
    # one worker, so answers arrive in plan order: no 1.0 after the first 2.0
    first_new = min(b["t"] for b in seconds if b["versions"].get("2.0"))
    assert all(not b["versions"].get("1.0") for b in seconds if b["t"] > first_new)
    late = [b for b in seconds if b["versions"].get("2.0")]
    assert all(b["p95_ms"] is not None and b["p95_ms"] >= 20 for b in late)

    svg = render_timeline_svg(timeline)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    fills = [r.get("fill") for r in root.iter(f"{ns}rect")]
    assert "#d62728" in fills  # the errors
    assert len(root.findall(f"{ns}polyline")) == 1  # the p95 line
    titles = [t.text for t in root.iter(f"{ns}title")]
    assert any("1.0: " in t for t in titles) and any("2.0: " in t for t in titles)
    json.dumps(timeline)  # the timeline is plain JSON data


def test_recorder_stops_by_itself_after_max_duration():
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        recorder = TrafficRecorder(SamplerConfig(url=server.url()), rate=20, max_duration=0.5).start()
        assert recorder.wait(5)
        timeline = recorder.stop()
    assert 0.5 <= timeline["duration_s"] < 2
    assert 5 <= timeline["summary"]["total"] <= 12


@pytest.mark.parametrize("kwargs, option", [
    ({"rate": None}, "rate"),
    ({"rate": 0}, "rate"),
    ({"rate": 1e6}, "rate"),
    ({"max_duration": -1}, "max_duration"),
    ({"max_duration": 1e6}, "max_duration"),
])
def test_recorder_refuses_unbounded_settings(kwargs, option):
    with pytest.raises(TrafficError) as err:
        TrafficRecorder(SamplerConfig(url="http://127.0.0.1:9/"), **kwargs)
    assert err.value.option == option


def test_svg_escapes_text():
    timeline = {"url": "http://x/?a=<b>&c", "summary": {}, "seconds": [
        {"t": 0, "requests": 2, "errors": 0, "error_kinds": {}, "versions": {'<"v">': 2}, "p95_ms": 1.0}]}
    root = ET.fromstring(render_timeline_svg(timeline))
    assert root.tag.endswith("svg")


def test_missing_requests_is_reported(monkeypatch):
    monkeypatch.setattr(traffic, "HAS_REQUESTS", False)
    with pytest.raises(TrafficError) as err:
        TrafficSampler(SamplerConfig(url="http://127.0.0.1/"))
    assert "requests" in str(err.value)
