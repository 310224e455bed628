"""The traffic sampler's options: status matcher, version reader, SamplerConfig validation, URL redaction."""
from __future__ import annotations

import json

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import (
    SamplerConfig,
    StatusMatcher,
    TrafficError,
    VersionReader,
    redact_url,
)


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


def test_redact_url_hides_passwords_only():
    assert redact_url("http://user:pw@127.0.0.1:8080/x?y=1") == "http://user:********@127.0.0.1:8080/x?y=1"
    assert redact_url("http://127.0.0.1/") == "http://127.0.0.1/"
