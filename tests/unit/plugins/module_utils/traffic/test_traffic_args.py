"""Argument specs for modules that sample traffic: in step with the doc fragments, params to objects."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic import args
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import TrafficError


def fragment_options(attribute: str) -> dict:
    import yaml
    from ansible_collections.zerodown.rollout.plugins.doc_fragments.traffic import ModuleDocFragment
    return yaml.safe_load(getattr(ModuleDocFragment, attribute))["options"]


@pytest.mark.parametrize("attribute, spec", [("DOCUMENTATION", args.SAMPLER_ARGUMENT_SPEC),
                                             ("THRESHOLDS", args.THRESHOLDS_ARGUMENT_SPEC)])
def test_argument_specs_match_the_doc_fragment(attribute, spec):
    documented = fragment_options(attribute)
    assert set(documented) == set(spec)
    for name, doc in documented.items():
        assert doc["type"] == spec[name]["type"], name
        assert doc.get("default") == spec[name].get("default"), name
        assert doc.get("elements") == spec[name].get("elements"), name


def test_params_helpers_build_validated_objects():
    params = {name: spec.get("default") for name, spec in args.SAMPLER_ARGUMENT_SPEC.items()}
    params.update(version_header="X-App-Version", concurrency=2)
    config = args.sampler_config_from_params("http://127.0.0.1:8080/", params)
    assert config.concurrency == 2 and config.version_reader.describe() == "header X-App-Version"
    with pytest.raises(TrafficError) as err:
        args.sampler_config_from_params("http://127.0.0.1:8080/", dict(params, concurrency=0))
    assert err.value.option == "concurrency"
    thresholds = args.thresholds_from_params({"expect_version": "2.0", "max_p95_ms": 300})
    assert (thresholds.max_error_rate, thresholds.min_samples, thresholds.max_p95_ms) == (0.0, 10, 300.0)
