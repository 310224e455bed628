"""traffic_check lookup: option handling through the real lookup loader, against local servers."""
from __future__ import annotations

import socket

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from tests.support.traffic_servers import Reply, ScriptedServer

SECRET = "Bearer do-not-print-me"


@pytest.fixture(scope="module")
def lookup():
    # tests/conftest.py installed the collection finder
    plugin = lookup_loader.get("zerodown.rollout.traffic_check")
    assert plugin is not None, "the collection is not on ANSIBLE_COLLECTIONS_PATH"
    return plugin


@pytest.fixture
def server():
    # 90% 2.0, 10% 1.0, every 20th answer a 503
    def plan(i: int, path: str) -> Reply:
        if i % 20 == 19:
            return Reply(status=503, version="2.0")
        return Reply(version="1.0" if i % 10 == 0 else "2.0")

    with ScriptedServer(plan) as srv:
        yield srv


def run(lookup, url, **kwargs):
    return lookup.run([url], variables={}, **kwargs)


def test_default_run_returns_one_dict_per_url(lookup, server):
    results = lookup.run([server.url("/a"), server.url("/b")], variables={}, requests=40)
    assert len(results) == 2
    for result in results:
        assert result["total"] == 40 and result["concurrency"] == 4
        assert result["status_counts"] == {"200": 38, "503": 2}
        assert result["error_kinds"] == {"status": 2} and result["error_rate"] == 0.05
        assert result["versions"] == {"2.0": 36, "1.0": 4}
        assert result["verdict"] == "fail"  # max_error_rate defaults to 0
        assert result["reasons"] == ["error rate 5.00% (2/40: status=2) is above max_error_rate 0.00%"]
        assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max", "mean"}
        assert result["version_source"] == "json version"


def test_default_request_count_is_100(lookup, server):
    assert run(lookup, server.url())[0]["total"] == 100


def test_thresholds_and_pass(lookup, server):
    result = run(lookup, server.url(), requests=100, max_error_rate=0.05, expect_version="2.0",
                 min_version_fraction=0.9, max_p95_ms=5000)[0]
    assert result["versions"] == {"2.0": 90, "1.0": 10}
    assert result["version_fractions"] == {"2.0": 0.9, "1.0": 0.1}
    assert result["verdict"] == "pass" and result["reasons"] == []
    assert [c["name"] for c in result["checks"]] == ["min_samples", "max_error_rate", "expect_version", "max_p95_ms"]


def test_none_means_not_checked(lookup, server):
    # what the roles pass when a gate is switched off
    result = run(lookup, server.url(), requests=20, max_error_rate=0.5, expect_version=None,
                 min_version_fraction=None, max_p95_ms=None)[0]
    assert result["verdict"] == "pass"
    assert [c["name"] for c in result["checks"]] == ["min_samples", "max_error_rate"]


def test_fail_on(lookup, server):
    with pytest.raises(AnsibleLookupError) as err:
        run(lookup, server.url(), requests=20, fail_on="fail")
    assert "verdict fail" in str(err.value) and "max_error_rate" in str(err.value)
    # inconclusive: too few samples in the time given
    slow = run(lookup, server.url(), duration=0.01, concurrency=1, min_samples=1000, max_error_rate=1)[0]
    assert slow["verdict"] == "inconclusive"
    assert run(lookup, server.url(), duration=0.01, concurrency=1, min_samples=1000, max_error_rate=1,
               fail_on="fail")[0]["verdict"] == "inconclusive"
    with pytest.raises(AnsibleLookupError) as err:
        run(lookup, server.url(), duration=0.01, concurrency=1, min_samples=1000, fail_on="inconclusive")
    assert "verdict inconclusive" in str(err.value) and "min_samples=1000" in str(err.value)


def test_version_from_header_and_regex(lookup):
    with ScriptedServer(lambda i, p: Reply(version="3.3", where="header")) as srv:
        assert run(lookup, srv.url(), requests=10, version_header="X-App-Version")[0]["versions"] == {"3.3": 10}
        assert run(lookup, srv.url(), requests=10)[0]["versions"] == {"unknown": 10}
    with ScriptedServer(lambda i, p: Reply(version="4.4", where="body")) as srv:
        result = run(lookup, srv.url(), requests=10, version_regex=r"version: ([0-9.]+)")[0]
        assert result["versions"] == {"4.4": 10} and result["version_source"].startswith("regex")


def test_headers_are_sent_and_never_echoed(lookup):
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as srv:
        result = run(lookup, srv.url(), requests=10, headers={"Authorization": SECRET})[0]
        assert srv.seen_headers[0]["Authorization"] == SECRET
    assert SECRET not in repr(result)
    for headers in ({"Authorization": SECRET + "\n"}, "Authorization: " + SECRET, [SECRET]):
        with pytest.raises(AnsibleLookupError) as err:
            run(lookup, srv.url(), requests=10, headers=headers)
        assert "headers" in str(err.value) and "do-not-print-me" not in str(err.value)


@pytest.mark.parametrize("url, kwargs, words", [
    ("ftp://127.0.0.1/", {}, ["not http or https"]),
    ("http://127.0.0.1/", {"requests": -5}, ["requests must be >= 1"]),
    ("http://127.0.0.1/", {"requests": 0}, ["requests must be >= 1"]),
    ("http://127.0.0.1/", {"requests": 5}, ["below min_samples (10)"]),
    ("http://127.0.0.1/", {"requests": "many"}, ["requests", "many"]),
    ("http://127.0.0.1/", {"duration": -1}, ["duration must be > 0"]),
    ("http://127.0.0.1/", {"requests": 20, "duration": 1}, ["either requests or duration"]),
    ("http://127.0.0.1/", {"concurrency": 0}, ["concurrency must be >= 1"]),
    ("http://127.0.0.1/", {"timeout": 0}, ["timeout must be > 0"]),
    ("http://127.0.0.1/", {"version_regex": "(oops"}, ["version_regex", "regular expression"]),
    ("http://127.0.0.1/", {"expected_status": ["200", "2xy"]}, ["expected_status", "2xy"]),
    ("http://127.0.0.1/", {"expected_status": [999]}, ["expected_status", "999"]),
    ("http://127.0.0.1/", {"max_error_rate": 5}, ["max_error_rate", "between 0 and 1"]),
    ("http://127.0.0.1/", {"min_version_fraction": 0.5}, ["min_version_fraction needs expect_version"]),
    ("http://127.0.0.1/", {"fail_on": "always"}, ["fail_on"]),
    ("http://127.0.0.1/", {"version_header": "X-V", "version_regex": "v(.*)"}, ["only one of"]),
    ("http://127.0.0.1/", {"request": 10}, ["unknown option(s) request"]),
])
def test_malformed_options_are_refused_before_any_request(lookup, url, kwargs, words):
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as srv:
        target = url if url.startswith("ftp") else srv.url()
        with pytest.raises(AnsibleLookupError) as err:
            run(lookup, target, **kwargs)
        assert srv.count == 0
    message = str(err.value)
    assert message.startswith("traffic_check: ")
    for word in words:
        assert word in message


def test_no_terms_is_refused(lookup):
    with pytest.raises(AnsibleLookupError, match="at least one"):
        lookup.run([], variables={})


def test_unreachable_target_fails_with_connection_errors(lookup):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(lookup, f"http://user:pw@127.0.0.1:{port}/", requests=10)[0]
    assert result["url"] == f"http://user:********@127.0.0.1:{port}/"
    assert result["error_kinds"] == {"connection": 10} and result["responses"] == 0
    assert result["verdict"] == "fail"
    assert "Connection refused" in result["error_examples"]["connection"]
    assert ":pw@" not in repr(result)


def documented_options(attribute: str) -> dict:
    import yaml
    from ansible_collections.zerodown.rollout.plugins.doc_fragments.traffic import ModuleDocFragment
    return yaml.safe_load(getattr(ModuleDocFragment, attribute))["options"]


def test_every_documented_sampling_option_and_threshold_reaches_the_sampler_and_the_verdict():
    """The fragments are the lookup's options (set_options validates them); each one is a field of SamplerConfig or
    Thresholds under the same name, so none is documented and dropped, or taken and undocumented."""
    from ansible_collections.zerodown.rollout.plugins.lookup import traffic_check
    assert set(documented_options("DOCUMENTATION")) == set(traffic_check.SAMPLER_OPTIONS)
    assert set(documented_options("THRESHOLDS")) == set(traffic_check.THRESHOLD_OPTIONS)
