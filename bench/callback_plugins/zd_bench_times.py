"""Benchmark support: writes when each task started and when its result reached the controller.

Enabled only by the benchmarks (ANSIBLE_CALLBACKS_ENABLED=zd_bench_times, ZD_BENCH_TIMES=<file>); one JSON
line per event, wall-clock seconds, so they compare with the times the benchmark itself records.
"""
from __future__ import annotations

DOCUMENTATION = """
name: zd_bench_times
type: aggregate
short_description: task start/end wall-clock times for the benchmarks
description: Writes task start and result times to the file named by ZD_BENCH_TIMES.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "zd_bench_times"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, event: str, name: str, **extra) -> None:
        path = os.environ.get("ZD_BENCH_TIMES")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(dict(extra, event=event, task=name, t=time.time())) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write("start", task.get_name())

    def v2_runner_on_ok(self, result):
        self._write("ok", result.task_name, changed=result._result.get("changed"))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result.task_name, msg=str(result._result.get("msg", ""))[:500])
