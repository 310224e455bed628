"""API errors translated into the collection's errors, scrubbed of the credential."""
from __future__ import annotations

import json

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.api_errors import (
    api_error_message,
    translate,
    unreachable,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.connection import resolve_connection
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutError,
    WorkloadNotFound,
)

SECRET = "s3cr3t-t0ken-value"


class FakeApiException(Exception):
    def __init__(self, status, message, reason="Reason"):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = json.dumps({"kind": "Status", "message": message})


@pytest.mark.parametrize("status, cls, text", [
    (404, WorkloadNotFound, 'deployments.apps "web" not found'),
    (422, InvalidInput, "spec.template.spec.containers[0].image: Required value"),
    (401, RolloutError, "rejected the credentials"),
    (403, RolloutError, "forbidden"),
    (500, RolloutError, "answered 500"),
])
def test_api_errors_are_translated_and_scrubbed(status, cls, text):
    conn = resolve_connection({"host": "http://127.0.0.1:1", "api_key": SECRET}, {})
    # A server echoing the token back (misbehaving proxy) must not leak it into the message.
    err = translate(FakeApiException(status, f'deployments.apps "web" not found {SECRET}'
                                     if status != 422 else
                                     "spec.template.spec.containers[0].image: Required value"),
                    "read", "http://127.0.0.1:1", conn)
    assert isinstance(err, cls)
    assert text in err.msg
    assert SECRET not in err.msg


def test_no_status_and_connection_failures_are_unreachable_without_the_token():
    conn = resolve_connection({"host": "http://127.0.0.1:1", "api_key": SECRET}, {})
    err = translate(FakeApiException(0, "", reason=f"connection reset, token {SECRET}"), "read", "http://h:1", conn)
    assert isinstance(err, PlatformUnreachable)
    assert err.msg == "read: cannot talk to the Kubernetes API at http://h:1: connection reset, token ********"
    err = unreachable(OSError(f"refused {SECRET}"), "http://h:1", conn)
    assert isinstance(err, PlatformUnreachable)
    assert err.msg.startswith("cannot reach the Kubernetes API at http://h:1 (explicit host, host http://127.0.0.1:1): "
                              "refused ********. Check host/kubeconfig/context")


def test_api_error_message_falls_back_to_reason():
    exc = FakeApiException(502, "x", reason="Bad Gateway")
    exc.body = "<html>"
    assert api_error_message(exc) == "HTTP 502 Bad Gateway"
