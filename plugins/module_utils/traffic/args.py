# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs for a module that samples traffic, and the helpers that turn its params into objects.

Kept in step with the doc fragments ``zerodown.rollout.traffic`` and ``zerodown.rollout.traffic.THRESHOLDS``
(a unit test compares them). No module uses them yet: the ``traffic_check`` lookup reads its options from its
own documentation.
"""
from __future__ import annotations

from typing import Any, Dict

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.report import Thresholds


SAMPLER_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "concurrency": {"type": "int", "default": 4},
    "rate": {"type": "float"},
    "timeout": {"type": "float", "default": 5.0},
    "method": {"type": "str", "default": "GET"},
    "headers": {"type": "dict", "default": {}, "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "expected_status": {"type": "list", "elements": "str", "default": ["2xx"]},
    "version_json_path": {"type": "str"},
    "version_header": {"type": "str"},
    "version_regex": {"type": "str"},
}
SAMPLER_MUTUALLY_EXCLUSIVE = [("version_json_path", "version_header", "version_regex")]
THRESHOLDS_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "min_samples": {"type": "int", "default": 10},
    "max_error_rate": {"type": "float", "default": 0.0},
    "expect_version": {"type": "str"},
    "min_version_fraction": {"type": "float"},
    "max_p95_ms": {"type": "float"},
}


def sampler_config_from_params(url: str, params: Dict[str, Any]) -> SamplerConfig:
    """A validated ``SamplerConfig`` for ``url`` from module params shaped by ``SAMPLER_ARGUMENT_SPEC``."""
    options = {name: params[name] for name in SAMPLER_ARGUMENT_SPEC if params.get(name) is not None}
    return SamplerConfig(url=url, **options).validate()


def thresholds_from_params(params: Dict[str, Any]) -> Thresholds:
    """Validated ``Thresholds`` from module params shaped by ``THRESHOLDS_ARGUMENT_SPEC``."""
    return Thresholds(**{name: params.get(name, spec.get("default"))
                         for name, spec in THRESHOLDS_ARGUMENT_SPEC.items()}).validate()
