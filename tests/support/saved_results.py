"""Saving what a test playbook registered, without a module run: a ``set_fact`` named ``zd-save <path>`` on the
controller, written by the test callback ``callback_plugins/zd_save.py`` (enable it with ``callback_env()``)."""
from __future__ import annotations

import pathlib
import typing as t

CALLBACKS = pathlib.Path(__file__).resolve().parent / "callback_plugins"


def save_task(expression: str, path: str | pathlib.Path) -> dict[str, t.Any]:
    """A task that saves the JSON of the Jinja ``expression`` to ``path`` (``{host}`` in it: the host's name)."""
    return {"name": f"zd-save {path}", "ansible.builtin.set_fact": {"zd_saved": "{{ (" + expression + ") | to_json }}"},
            "check_mode": False}


def callback_env() -> dict[str, str]:
    """The environment that enables the saving callback in ansible-playbook."""
    return {"ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS), "ANSIBLE_CALLBACKS_ENABLED": "zd_save"}
