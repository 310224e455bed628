"""The Kubernetes options: kubernetes.core's names, and no name taken twice in any module's argument spec."""
from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils import platforms
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.args import KUBERNETES_ARGS


def test_the_argument_spec_uses_kubernetes_core_names_and_keeps_the_old_ones_as_deprecated_aliases():
    for name in ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "client_cert",
                 "client_key", "proxy", "proxy_headers", "no_proxy", "impersonate_user", "impersonate_groups"):
        assert name in KUBERNETES_ARGS, name
    for old, new in (("k8s_ca_cert", "ca_cert"), ("k8s_client_cert", "client_cert"),
                     ("k8s_client_key", "client_key"), ("k8s_validate_certs", "validate_certs"),
                     ("k8s_proxy", "proxy")):
        assert old in KUBERNETES_ARGS[new]["aliases"]
        assert [d["name"] for d in KUBERNETES_ARGS[new]["deprecated_aliases"]] == [old]


@pytest.mark.parametrize("module_name", ["image_upgrade", "rollout_wait", "rollback", "rollout_info", "preflight"])
def test_no_option_name_or_alias_is_taken_twice(module_name):
    module = importlib.import_module(f"ansible_collections.zerodown.rollout.plugins.modules.{module_name}")
    source = inspect.getsource(module)
    # the groups and module options the module passes to argument_spec(...)
    call = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "argument_spec")
    groups = [ast.literal_eval(arg) for arg in call.args]
    own = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    spec = platforms.argument_spec(*groups, **own)
    seen: dict[str, str] = {}
    for option, definition in spec.items():
        for name in [option, *definition.get("aliases", [])]:
            assert name not in seen, f"{module_name}: {name} is both {seen[name]} and {option}"
            seen[name] = option
    sizes = len(platforms.COMMON_ARGS) + len(platforms._backend_args(groups)) + len(own)
    assert len(spec) == sizes, f"{module_name}: a module option has the name of a backend option"
