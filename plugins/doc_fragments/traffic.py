# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How to sample HTTP traffic: the traffic_check lookup's options (set_options validates them), each the
    # field of module_utils/traffic/config.py SamplerConfig of the same name (THRESHOLDS: report.py Thresholds).
    DOCUMENTATION = r"""
options:
  concurrency:
    description:
      - How many requests are in flight at once. Each worker reuses one keep-alive connection.
    type: int
    default: 4
  rate:
    description:
      - Upper limit of requests per second over all workers, spread evenly.
      - When unset, requests are sent as fast as the target answers.
    type: float
  timeout:
    description:
      - Seconds to wait for the connection and for each read of the answer. A request that takes longer
        counts as a V(timeout) error.
    type: float
    default: 5
  method:
    description:
      - HTTP method of every request, such as V(GET) or V(HEAD).
      - Redirects are not followed. A 3xx answer is reported as it is, as C(curl) without C(-L) would show it.
    type: str
    default: GET
  headers:
    description:
      - Request headers, as a mapping of name to value. Values are never shown in errors or results, so
        an C(Authorization) header is safe here.
    type: dict
    default: {}
  validate_certs:
    description:
      - Whether to verify the TLS certificate of an C(https://) target.
      - Set to V(false) only for a target with a self-signed certificate you trust; prefer O(ca_path).
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to verify an C(https://) target against, instead of the system's.
    type: path
  expected_status:
    description:
      - The HTTP statuses that count as success; any other status counts as a V(status) error.
      - Entries are status codes such as V(200) or classes such as V(2xx).
    type: list
    elements: str
    default: ['2xx']
  version_json_path:
    description:
      - Read the version from this field of a JSON body, as a dotted path (V(build.version); a number
        selects a list item). Used when neither O(version_header) nor O(version_regex) is set, with
        V(version) as the default.
    type: str
  version_header:
    description:
      - Read the version from this response header, such as V(X-App-Version).
      - Mutually exclusive with O(version_json_path) and O(version_regex).
    type: str
  version_regex:
    description:
      - Read the version from the body with this regular expression (Python syntax); the first capturing
        group is the version, or the whole match when there is no group.
      - Mutually exclusive with O(version_json_path) and O(version_header).
    type: str
"""

    # Gating thresholds: what a sample must show to pass.
    THRESHOLDS = r"""
options:
  min_samples:
    description:
      - The verdict is V(inconclusive), never V(pass), when fewer requests than this were made.
    type: int
    default: 10
  max_error_rate:
    description:
      - Largest share of failed requests (connection errors, timeouts, TLS errors and unexpected statuses)
        that still passes, as a fraction between 0 and 1 (V(0.01) is 1%).
      - V(0), the default, is the zero-downtime promise. Set to V(1) to not judge errors.
    type: float
    default: 0
  expect_version:
    description:
      - The version every answer should report. The share of responses reporting it must reach
        O(min_version_fraction).
    type: str
  min_version_fraction:
    description:
      - Smallest share of responses (answers with any status) that must report O(expect_version), between
        0 and 1. Defaults to V(1) (every response) when O(expect_version) is set.
    type: float
  max_p95_ms:
    description:
      - Largest 95th percentile latency, in milliseconds, that still passes.
    type: float
"""
