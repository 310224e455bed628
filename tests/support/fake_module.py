"""A stand-in for AnsibleModule in unit tests: ``params``, check mode, warnings kept in ``warnings``, and
fail_json/exit_json that stop the test."""
from __future__ import annotations


class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.failed = None
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)

    def exit_json(self, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError(f"the module exited normally: {kwargs}")
