"""traffic_check through a real ansible-playbook run (localhost, connection local) against local servers."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

from tests.support.traffic_servers import Reply, ScriptedServer

SECRET = "Bearer playbook-secret-value"


def ansible_playbook(playbook: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    binary = pathlib.Path(sys.executable).parent / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false")
    return subprocess.run([str(binary), "-i", "localhost,", "-c", "local", str(playbook),
                           "-e", f"ansible_python_interpreter={sys.executable}", *extra],
                          capture_output=True, text=True, env=env, timeout=240, check=False)


def test_gating_playbook(tmp_path):
    # "new" answers carry 2.0; "mixed" is mid-rollout (1 in 4 on 1.0) and drops every 10th connection
    def new(i: int, path: str) -> Reply:
        return Reply(version="2.0", where="header")

    def mixed(i: int, path: str) -> Reply:
        return Reply(version="1.0" if i % 4 == 0 else "2.0", abrupt=i % 10 == 9)

    out = tmp_path / "result.json"
    with ScriptedServer(new) as good, ScriptedServer(mixed) as bad:
        playbook = tmp_path / "gate.yml"
        playbook.write_text(textwrap.dedent(f"""\
            - hosts: localhost
              gather_facts: false
              vars:
                token: "{SECRET}"
              tasks:
                - name: Sample the upgraded service
                  ansible.builtin.set_fact:
                    traffic: >-
                      {{{{ lookup('zerodown.rollout.traffic_check', '{good.url('/version')}', requests=60,
                                  concurrency=3, version_header='X-App-Version', expect_version='2.0',
                                  max_p95_ms=2000, headers={{'Authorization': token}}) }}}}

                - name: Gate on the verdict
                  ansible.builtin.assert:
                    that:
                      - traffic.verdict == 'pass'
                      - traffic.total == 60
                      - traffic.versions['2.0'] == 60
                      - traffic.reasons == []
                    fail_msg: "{{{{ traffic.reasons | join('; ') }}}}"

                - name: Sample the half-upgraded service
                  ansible.builtin.set_fact:
                    midway: >-
                      {{{{ lookup('zerodown.rollout.traffic_check', '{bad.url()}', requests=40, concurrency=2,
                                  expect_version='2.0', min_version_fraction=0.9) }}}}

                - name: The lookup can fail the task itself
                  block:
                    - name: Gate with fail_on
                      ansible.builtin.debug:
                        msg: >-
                          {{{{ lookup('zerodown.rollout.traffic_check', '{bad.url()}', requests=20,
                                      fail_on='fail') }}}}
                    - name: Not reached
                      ansible.builtin.set_fact:
                        reached: true
                  rescue:
                    - name: Keep the failure message
                      ansible.builtin.set_fact:
                        failure: "{{{{ ansible_failed_result.msg }}}}"

                - name: Bad options fail the task with a clear message
                  block:
                    - name: Negative count
                      ansible.builtin.debug:
                        msg: "{{{{ lookup('zerodown.rollout.traffic_check', '{good.url()}', requests=-3) }}}}"
                  rescue:
                    - name: Keep that message
                      ansible.builtin.set_fact:
                        bad_option: "{{{{ ansible_failed_result.msg }}}}"

                - name: Save what the playbook saw
                  ansible.builtin.copy:
                    dest: "{out}"
                    content: "{{{{ {{'traffic': traffic, 'midway': midway, 'failure': failure,
                                   'bad_option': bad_option, 'reached': reached | default(false)}} | to_json }}}}"
                    mode: "0600"
            """))
        proc = ansible_playbook(playbook, "-v")
        good_headers = good.seen_headers[0]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert good_headers["Authorization"] == SECRET
    assert "playbook-secret-value" not in proc.stdout + proc.stderr.replace(f'token: "{SECRET}"', "")

    seen = json.loads(out.read_text())
    traffic = seen["traffic"]
    assert traffic["verdict"] == "pass" and traffic["total"] == 60 and traffic["errors"] == 0
    assert traffic["version_source"] == "header X-App-Version"

    midway = seen["midway"]
    assert midway["total"] == 40
    assert midway["error_kinds"] == {"connection": 4}
    assert midway["responses"] == 36
    assert midway["versions"] == {"2.0": 26, "1.0": 10}
    assert midway["verdict"] == "fail"
    assert len(midway["reasons"]) == 2  # errors and version share

    assert seen["reached"] is False
    assert "verdict fail" in seen["failure"] and "max_error_rate" in seen["failure"]
    assert "requests must be >= 1" in seen["bad_option"]
