"""Test-only callback: writes what a ``zd-save`` task computed to a file, from the controller.

The harnesses used to end each playbook with an ``ansible.builtin.copy`` of the registered results: three module
runs (stat, copy, file) that cost about 2 CPU-seconds per playbook, paid hundreds of times per ``make test``.
A ``set_fact`` runs on the controller, and this callback writes its value (``tests/support/saved_results.py``).
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: zd_save
type: aggregate
short_description: write the value of zd-save tasks to files (tests only)
description:
  - For a task named C(zd-save <path>), writes its fact C(zd_saved) to <path>; C({host}) in the path is the host.
"""

PREFIX = "zd-save "


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "zd_save"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result) -> None:
        name = result._task.get_name()
        if not name.startswith(PREFIX):
            return
        value = result._result.get("ansible_facts", {}).get("zd_saved")
        path = name[len(PREFIX):].replace("{host}", result._host.get_name())
        text = value if isinstance(value, str) else json.dumps(value)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
