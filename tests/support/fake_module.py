"""A stand-in for AnsibleModule in unit tests: ``params``, check mode, and fail_json/exit_json that stop the test."""
from __future__ import annotations


class FakeModule:
    check_mode = False

    def __init__(self, params):
        self.params = params
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)

    def exit_json(self, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError(f"the module exited normally: {kwargs}")
