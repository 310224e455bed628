# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: traffic_check
short_description: Sample live HTTP traffic and judge it against error, version and latency thresholds
version_added: 0.1.0
author: zerodown maintainers (@zerodown)
description:
  - Sends real HTTP requests to each URL, concurrently over keep-alive connections, and returns what a person
    watching C(while true; do curl URL; done) would see, as numbers a playbook can gate on.
  - Counts every status, every error by kind (V(connection), V(timeout), V(tls), V(protocol), and V(status)
    for an answer outside O(expected_status)), the mix of versions the answers report, and the latency
    percentiles.
  - Judges the sample against the thresholds and returns a verdict, V(pass), V(fail) or V(inconclusive)
    (fewer than O(min_samples) requests), with the reasons. With O(fail_on) the lookup itself fails.
  - Runs on the controller, so the URL must be reachable from there.
  - Percentiles use the nearest-rank method over the latencies of answered requests (an observed value,
    no interpolation).
options:
  _terms:
    description:
      - One or more C(http://) or C(https://) URLs. Each is sampled in turn and gets its own result.
    type: list
    elements: str
    required: true
  requests:
    description:
      - How many requests to send to each URL.
      - Defaults to V(100) when O(duration) is not set. Give O(requests) or O(duration), not both.
    type: int
  duration:
    description:
      - Keep sending requests for this many seconds instead of a fixed number.
    type: float
  fail_on:
    description:
      - Make the lookup itself fail, naming the reasons, for this verdict or worse.
      - V(never) returns the verdict for the playbook to judge; V(fail) fails on a V(fail) verdict;
        V(inconclusive) fails on V(fail) and on V(inconclusive).
    type: str
    default: never
    choices: [never, fail, inconclusive]
extends_documentation_fragment:
  - zerodown.rollout.traffic
  - zerodown.rollout.traffic.THRESHOLDS
seealso:
  - name: docs/traffic_check.md
    description: How to gate a rollout on live traffic, and how to record a timeline of an upgrade.
    link: https://github.com/zerodown/rollout/blob/main/docs/traffic_check.md
notes:
  - Connections go directly to the target; proxy settings from the environment are ignored.
  - Requests are not retried, so a dropped connection is counted as the curl loop would have seen it.
"""

EXAMPLES = r"""
- name: Sample the service through the load balancer
  ansible.builtin.set_fact:
    traffic: "{{ lookup('zerodown.rollout.traffic_check', 'http://lb.example.com/version', requests=200) }}"

- name: Gate the upgrade - no errors, everyone on the new version, p95 below 250 ms
  ansible.builtin.assert:
    that:
      - traffic.verdict == 'pass'
    fail_msg: "Traffic check failed: {{ traffic.reasons | join('; ') }}"
  vars:
    traffic: >-
      {{ lookup('zerodown.rollout.traffic_check', 'https://shop.example.com/healthz',
                duration=20, concurrency=8, expect_version='2.0', max_p95_ms=250,
                headers={'Authorization': 'Bearer ' ~ api_token}) }}

- name: Fail straight away unless the version header shows 2.0 on 95% of answers
  ansible.builtin.debug:
    msg: >-
      {{ lookup('zerodown.rollout.traffic_check', 'http://10.0.0.5:8080/', version_header='X-App-Version',
                expect_version='2.0', min_version_fraction=0.95, max_error_rate=0.01, fail_on='fail') }}

- name: Read the version from an HTML page
  ansible.builtin.set_fact:
    page_versions: >-
      {{ (lookup('zerodown.rollout.traffic_check', 'http://lb.example.com/', requests=50,
                 version_regex='data-version="([^"]+)"')).versions }}
"""

RETURN = r"""
_raw:
  description:
    - One result per URL. A single URL gives the result itself, as a dictionary.
  type: list
  elements: dict
  contains:
    url:
      description: The URL sampled, without any password it carried.
      type: str
    total:
      description: Requests sent.
      type: int
    responses:
      description: Requests that got an HTTP answer, whatever its status.
      type: int
    ok:
      description: Requests answered with an expected status.
      type: int
    status_counts:
      description: How many answers had each HTTP status, keyed by the status as a string.
      type: dict
      sample: {"200": 190, "503": 10}
    errors:
      description: Requests that failed, with no answer or an unexpected status.
      type: int
    error_rate:
      description: C(errors) divided by C(total), between 0 and 1.
      type: float
    error_kinds:
      description:
        - Failed requests by kind, V(connection) (refused, reset, closed early), V(timeout), V(tls),
          V(protocol) (a malformed answer) and V(status).
      type: dict
      sample: {"connection": 3, "status": 10}
    error_examples:
      description: One message per error kind, to tell what went wrong. Never holds request headers.
      type: dict
    versions:
      description:
        - How many answers reported each version. Answers with no readable version count as V(unknown).
      type: dict
      sample: {"2.0": 150, "1.0": 50}
    version_fractions:
      description: Each version's share of the answers (C(responses)), between 0 and 1.
      type: dict
      sample: {"2.0": 0.75, "1.0": 0.25}
    latency_ms:
      description:
        - Latency of answered requests in milliseconds, until the whole body arrived. C(p50), C(p95) and
          C(p99) are nearest-rank percentiles; also C(max) and C(mean). V(null) without any answer.
      type: dict
      sample: {"p50": 1.2, "p95": 3.4, "p99": 8.1, "max": 12.0, "mean": 1.6}
    duration_s:
      description: Seconds the sampling took.
      type: float
    requests_per_s:
      description: Requests per second achieved.
      type: float
    concurrency:
      description: Workers used.
      type: int
    version_source:
      description: Where the version was read, such as C(json version) or C(header X-App-Version).
      type: str
    expected_status:
      description: The statuses that counted as success.
      type: list
      elements: str
    verdict:
      description: V(pass), V(fail) or V(inconclusive) (fewer than O(min_samples) requests).
      type: str
    reasons:
      description: Why the verdict is not V(pass), one sentence per failed check. Empty on V(pass).
      type: list
      elements: str
    checks:
      description: Each check made, with its name, whether it passed, the measured value and the limit.
      type: list
      elements: dict
"""

from dataclasses import fields
from typing import Any, Dict, List

from ansible import constants as C
from ansible.errors import AnsibleLookupError, AnsibleOptionsError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig, TrafficError, redact_url
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.report import VERDICT_FAIL, VERDICT_PASS, Thresholds, evaluate
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.sampler import HAS_REQUESTS, TrafficSampler, missing_requests_message

DEFAULT_REQUESTS = 100
# The options are this plugin's documentation (with the zerodown.rollout.traffic fragments), which set_options
# validates; each sampling option is a field of SamplerConfig, each threshold one of Thresholds, by the same name.
SAMPLER_OPTIONS = tuple(f.name for f in fields(SamplerConfig) if f.name != "url")
THRESHOLD_OPTIONS = tuple(f.name for f in fields(Thresholds))


class LookupModule(LookupBase):

    def run(self, terms: List[Any], variables: Any = None, **kwargs: Any) -> List[Dict[str, Any]]:
        if not HAS_REQUESTS:
            raise AnsibleLookupError(missing_requests_message())
        headers = kwargs.get("headers")
        if headers is not None and not isinstance(headers, dict):
            # Checked here so the option parser never gets a chance to echo a secret value.
            raise AnsibleLookupError("traffic_check: headers must be a mapping of header name to value.")
        known = set(C.config.get_configuration_definitions("lookup", self._load_name) or {})
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise AnsibleLookupError(f"traffic_check: unknown option(s) {', '.join(unknown)}; valid options are "
                                     f"{', '.join(sorted(known - {'_terms'}))}.")
        try:
            self.set_options(var_options=variables, direct=kwargs)
        except AnsibleOptionsError as exc:
            raise AnsibleLookupError(f"traffic_check: {to_native(exc)}") from None

        if not terms:
            raise AnsibleLookupError("traffic_check: give at least one http:// or https:// URL to sample.")
        count = self.get_option("requests")
        duration = self.get_option("duration")
        if count is not None and duration is not None:
            raise AnsibleLookupError("traffic_check: give either requests or duration, not both.")
        if count is None and duration is None:
            count = DEFAULT_REQUESTS
        fail_on = self.get_option("fail_on")

        thresholds = Thresholds(**{name: self.get_option(name) for name in THRESHOLD_OPTIONS})
        try:
            thresholds.validate()
            if count is not None and count < 1:
                raise TrafficError(f"requests must be >= 1, got {count}.", "requests")
            if duration is not None and not duration > 0:
                raise TrafficError(f"duration must be > 0 seconds, got {duration}.", "duration")
            if count is not None and count < thresholds.min_samples:
                raise TrafficError(f"requests ({count}) is below min_samples ({thresholds.min_samples}), so the "
                                   "verdict could only be inconclusive; raise requests or lower min_samples.",
                                   "requests")
        except TrafficError as exc:
            raise AnsibleLookupError(f"traffic_check: {exc}") from None

        results = []
        for term in terms:
            url = term if isinstance(term, str) else to_native(term)
            options = {name: self.get_option(name) for name in SAMPLER_OPTIONS}
            try:
                sampler = TrafficSampler(SamplerConfig(url=url, **options))
                report = sampler.run(requests=count, duration=duration)
            except TrafficError as exc:
                raise AnsibleLookupError(f"traffic_check: {exc}") from None
            verdict = evaluate(report, thresholds)
            result = report.to_dict()
            result.update(verdict.to_dict())
            if fail_on != "never" and not verdict.passed and (fail_on == "inconclusive"
                                                              or verdict.verdict == VERDICT_FAIL):
                raise AnsibleLookupError(
                    f"traffic_check: {redact_url(url)}: verdict {verdict.verdict} "
                    f"(fail_on={fail_on}): {'; '.join(verdict.reasons)}")
            if verdict.verdict != VERDICT_PASS:
                self._display.vvv(f"traffic_check {redact_url(url)}: {verdict.verdict}: {'; '.join(verdict.reasons)}")
            results.append(result)
        return results
