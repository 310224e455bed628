"""Every documentation fragment is YAML that loads into options with a description, so that ansible-doc and the
modules' validation can read them (a `: ` inside a plain list item, for one, breaks the whole module's docs)."""
from __future__ import annotations

import importlib
import pathlib

import pytest
import yaml

FRAGMENTS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[4] / "plugins" / "doc_fragments").glob("*.py")
                   if p.stem != "__init__")


def _walk(options, where):
    for name, spec in (options or {}).items():
        assert isinstance(spec, dict) and spec.get("description"), f"{where}.{name} has no description"
        _walk(spec.get("suboptions"), f"{where}.{name}")


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_each_fragment_loads_and_describes_every_option(fragment):
    module = importlib.import_module(f"ansible_collections.zerodown.rollout.plugins.doc_fragments.{fragment}")
    docs = module.ModuleDocFragment
    texts = {name: getattr(docs, name) for name in dir(docs) if name.isupper()}
    assert texts, fragment
    for name, text in texts.items():
        loaded = yaml.safe_load(text)
        assert isinstance(loaded, dict), f"{fragment}.{name}"
        _walk(loaded.get("options"), f"{fragment}.{name}")
