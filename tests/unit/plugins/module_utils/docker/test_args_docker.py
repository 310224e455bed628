"""docker/args.py: the Docker options' argument specs, checked by validating tasks' parameters against them as
AnsibleModule does."""
from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import load_balancer_options
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import args

SPEC = {**args.DOCKER_ARGS, **args.DOCKER_ROLLOUT_ARGS, **args.DOCKER_CONTAINER_ARGS}


def validate(params):
    result = ArgumentSpecValidator(SPEC).validate(params)
    return result.validated_parameters, [str(e) for e in result.errors]


def test_the_three_groups_take_no_name_twice():
    groups = (args.DOCKER_ARGS, args.DOCKER_ROLLOUT_ARGS, args.DOCKER_CONTAINER_ARGS)
    assert sum(len(g) for g in groups) == len(SPEC)


def test_load_balancer_takes_the_suboptions_the_registry_builds_from_the_drivers():
    assert args.DOCKER_ARGS["load_balancer"]["options"] is args.LOAD_BALANCER_OPTIONS
    assert args.LOAD_BALANCER_OPTIONS == load_balancer_options()


def test_the_client_key_is_kept_out_of_the_output_and_the_other_tls_paths_are_not():
    assert args.DOCKER_ARGS["docker_client_key"]["no_log"] is True
    assert not args.DOCKER_ARGS["docker_ca_path"].get("no_log")
    assert not args.DOCKER_ARGS["docker_client_cert"].get("no_log")
    validated, errors = validate({"docker_client_key": "/etc/docker/key.pem"})
    assert errors == [] and validated["docker_client_key"] == "/etc/docker/key.pem"


def test_explicit_zero_and_false_are_kept_and_unset_stays_unset():
    given = {"batch_size": 0, "batch_interval": 0.0, "health_timeout": 0, "drain_timeout": 0, "stop_timeout": 0,
             "retain": 0, "lock_timeout": 0, "max_batches": 0, "standby_seconds": 0, "promote": False,
             "docker_tls": False, "docker_tls_verify": False, "docker_timeout": 0}
    validated, errors = validate(dict(given))
    assert errors == []
    assert {name: validated[name] for name in given} == given
    validated, errors = validate({})
    assert errors == []
    # unset must be told from given: none of these options has a default
    assert all(validated[name] is None for name in given), {name: validated[name] for name in given}
    assert validated["strategy"] is None and validated["pull"] is None


def test_health_check_needs_a_path_and_expects_200_unless_told():
    validated, errors = validate({"health_check": {"path": "/healthz"}})
    assert errors == [] and validated["health_check"] == {"path": "/healthz", "status": [200]}
    validated, errors = validate({"health_check": {"path": "/healthz", "status": ["204", 301]}})
    assert errors == [] and validated["health_check"]["status"] == [204, 301]
    _validated, errors = validate({"health_check": {"status": [200]}})
    assert errors and "path" in errors[0] and "health_check" in errors[0]


def test_docker_container_defaults_and_its_healthcheck_needs_a_test():
    validated, errors = validate({"docker_container": {"port": 8080}})
    assert errors == []
    container = validated["docker_container"]
    assert container["port"] == 8080 and container["restart_policy"] == "unless-stopped"
    assert container["publish_address"] is None and container["lb_network"] is None
    _validated, errors = validate({"docker_container": {"port": 8080, "healthcheck": {"interval": 2}}})
    assert errors and "test" in errors[0] and "healthcheck" in errors[0]


@pytest.mark.parametrize("params, named", [
    ({"pull": "sometimes"}, "pull"),
    ({"strategy": "canary"}, "strategy"),
    ({"docker_container": {"restart_policy": "never"}}, "restart_policy"),
    ({"load_balancer": {"type": "traefik"}}, "type"),
])
def test_a_value_outside_the_choices_is_refused_naming_the_option(params, named):
    _validated, errors = validate(params)
    assert len(errors) == 1 and named in errors[0] and "one of" in errors[0], errors


def test_strategy_choices_are_the_progressive_strategies():
    assert args.DOCKER_CONTAINER_ARGS["strategy"]["choices"] == ["rolling", "steps", "blue_green"]
    validated, errors = validate({"strategy": "blue_green", "standby_seconds": 30, "promote": True})
    assert errors == [] and (validated["strategy"], validated["standby_seconds"], validated["promote"]) == \
        ("blue_green", 30.0, True)
