"""The guarded imports of the kubernetes client: the real names when it is installed, stand-ins when not."""
from __future__ import annotations

import importlib.util
import sys

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import library


def test_with_the_client_the_names_are_the_real_ones():
    from kubernetes.client.exceptions import ApiException
    import urllib3
    assert library.HAS_KUBERNETES is True and library.KUBERNETES_IMPORT_ERROR is None
    assert library.ApiException is ApiException and library.urllib3 is urllib3


def test_without_the_client_the_module_still_imports_and_says_why(monkeypatch):
    for name in list(sys.modules):
        if name == "kubernetes" or name.startswith("kubernetes."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes now raises ImportError
    spec = importlib.util.spec_from_file_location("zd_library_without_kubernetes", library.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.HAS_KUBERNETES is False and "kubernetes" in module.KUBERNETES_IMPORT_ERROR
    assert (module.k8s_client, module.k8s_config, module.k8s_watch, module.urllib3) == (None, None, None, None)
    # the stand-ins keep "except ApiException" and "except yaml.YAMLError" clauses valid
    assert issubclass(module.ApiException, Exception) and module.ApiException.status == 0
    assert issubclass(module.ConfigException, Exception) and issubclass(module.yaml.YAMLError, Exception)
