#!/usr/bin/env bash
# `make test` once the virtual environments, services and images are there (the Makefile sees to them).
#
# The suite mostly waits (health checks, drains, playbook start-up), so it runs as two streams side by side
# on separate resources, then what needs the machine to itself, alone:
#   units        both unit passes at once (newest and oldest ansible-core)
#   stream k8s   everything but tests/integration/docker, tests/integration/faults and the Docker canary role
#                test (Kubernetes, roles, playbooks), the test API server's own tests (tests/k8s_server/tests),
#                then its oldest-target pass (TARGET_OLDEST_K8S below)
#   stream docker  tests/integration/docker, tests/integration/faults and the Docker canary role test, then the
#                Docker modules' oldest-target pass, then sanity and ansible-lint
#   exclusive    the tests marked `exclusive` (a load they must hold: 150 requests/s), alone
# Each stream runs all of its steps even when one fails; the exit status is 1 if any step failed.
# docs/development.md says what each part takes.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PY=.venv/bin/python
OLD_PY=.venv-oldest/bin/python
TARGET_PY="$PWD/.venv-target-oldest/bin/python"
# --durations: each step's log ends with its slowest tests; step() adds --junitxml: every test's time in .tmp/test-logs
PYTEST=("$PY" -m pytest -q -p no:cacheprovider --durations=10)
LOGS=.tmp/test-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.status "$LOGS"/*.log "$LOGS"/*.xml

# The modules run a second time under the oldest supported target (Python 3.9 with the oldest clients): the
# module and role tests, not the fleets or the demo stories (the same modules and roles, the longest tests).
TARGET_OLDEST_K8S=(tests/integration/k8s_modules tests/integration/roles
  --ignore=tests/integration/roles/test_demo.py --ignore=tests/integration/roles/test_fleet.py
  --ignore=tests/integration/roles/test_fleet_docker.py)
TARGET_OLDEST_DOCKER=(tests/integration/docker/test_docker_modules.py)

# step <stream> <name> <command...>: run it, its output prefixed with the stream's name, and record its status
step() {
  local stream=$1 name=$2
  shift 2
  local started=$SECONDS rc
  local log
  log="$LOGS/$stream-$(echo "$name" | tr -c 'a-zA-Z0-9\n' '-').log"
  echo "[$stream] >> $name: $*"
  PYTEST_ADDOPTS="--junitxml=${log%.log}.xml" "$@" 2>&1 | tee "$log" | sed -u "s/^/[$stream] /"
  rc=${PIPESTATUS[0]}
  echo "$rc $((SECONDS - started)) $stream $name" >>"$LOGS/steps.status"
  echo "[$stream] << $name: exit $rc after $((SECONDS - started)) s"
  return 0
}

# The Docker canary role test runs in the docker stream (the two streams then take about as long); its
# oldest-target run stays with the other role tests.
DOCKER_ROLE_TESTS=(tests/integration/roles/test_docker_canary.py)

stream_k8s() {
  step k8s "integration (Kubernetes, roles, playbooks)" "${PYTEST[@]}" -m "not exclusive" tests/integration tests/k8s_server/tests \
    --ignore=tests/integration/docker --ignore=tests/integration/faults --ignore="${DOCKER_ROLE_TESTS[0]}"
  step k8s "integration under the oldest target (Kubernetes modules, roles)" \
    env ZD_TARGET_PYTHON="$TARGET_PY" "${PYTEST[@]}" -m "not exclusive" "${TARGET_OLDEST_K8S[@]}"
}

stream_docker() {
  step docker "integration (Docker, faults, the Docker canary role)" "${PYTEST[@]}" -m "not exclusive" \
    tests/integration/docker tests/integration/faults "${DOCKER_ROLE_TESTS[@]}"
  step docker "integration under the oldest target (Docker modules)" \
    env ZD_TARGET_PYTHON="$TARGET_PY" "${PYTEST[@]}" -m "not exclusive" "${TARGET_OLDEST_DOCKER[@]}"
  step docker "sanity" ./scripts/sanity.sh
  step docker "ansible-lint" .venv/bin/ansible-lint --profile production roles/ playbooks/
}

start=$SECONDS
step units "units (newest ansible-core)" "$PY" -m pytest -q -p no:cacheprovider tests/unit &
step units-oldest "units (oldest ansible-core)" "$OLD_PY" -m pytest -q -p no:cacheprovider tests/unit &
wait
stream_k8s &
stream_docker &
wait
step exclusive "integration tests that need the machine alone" "${PYTEST[@]}" -m exclusive tests/integration

echo ">> make test took $((SECONDS - start)) s; steps (exit status, seconds):"
sort -k3 "$LOGS/steps.status" | sed 's/^/   /'
if awk '$1 != 0 { bad = 1 } END { exit !bad }' "$LOGS/steps.status"; then
  echo ">> FAILED: $(awk '$1 != 0 { $1 = ""; $2 = ""; print }' "$LOGS/steps.status" | sed 's/^ *//' | paste -sd ';')"
  # pytest's own summary lines, so that the end of the output names what failed (a CI shows the end)
  grep -h -E '^(FAILED|ERROR) ' "$LOGS"/*.log | sed 's/^/   /'
  exit 1
fi
echo ">> all green"
