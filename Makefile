# The single entry point: demo, tests, sanity, lint, bench.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OLD_PY := .venv-oldest/bin/python
# The oldest supported target: Python 3.9 with kubernetes 24.2.0, docker 5.0.3, requests 2.28.1 (requirements/target-oldest.txt)
TARGET_OLDEST_PY := $(CURDIR)/.venv-target-oldest/bin/python
# The module and role integration tests, run a second time with the modules executing under that interpreter
# (ZD_TARGET_PYTHON; ansible-playbook stays on .venv). Not the benchmarks, the fault tests, the k8s test server's own
# tests, the two demo stories (test_demo.py) or the fleets (test_fleet*.py): the same modules and roles, the longest
# tests (docs/development.md). `make test` runs the same set in its two streams (scripts/test.sh).
TARGET_OLDEST_TESTS := tests/integration/k8s_modules tests/integration/docker/test_docker_modules.py \
	tests/integration/roles --ignore=tests/integration/roles/test_demo.py \
	--ignore=tests/integration/roles/test_fleet.py --ignore=tests/integration/roles/test_fleet_docker.py
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
COLL := .tmp/sanity/ansible_collections/zerodown/rollout

.PHONY: help venv venv-target-oldest services images units integration integration-oldest-target sanity lint changelog-lint test demo bench stress clean

help:
	@echo "make demo   - the seed story end to end on the local Docker engine"
	@echo "make test   - the whole test suite (what CI runs)"
	@echo "other targets: venv venv-target-oldest services images units integration integration-oldest-target sanity lint bench stress clean"

venv:
	@./scripts/bootstrap.sh

venv-target-oldest:
	@./scripts/bootstrap.sh target-oldest

services:
	@./scripts/services.sh

images: services
	@./images/demo-app/build.sh
	@./images/slow-app/build.sh

units: venv
	$(PY) -m pytest -q tests/unit
	$(OLD_PY) -m pytest -q -p no:cacheprovider tests/unit

integration: venv images
	$(PY) -m pytest -q tests/integration tests/k8s_server/tests

integration-oldest-target: venv venv-target-oldest images
	ZD_TARGET_PYTHON=$(TARGET_OLDEST_PY) $(PY) -m pytest -q -p no:cacheprovider $(TARGET_OLDEST_TESTS)

sanity: venv
	@./scripts/sanity.sh

lint: venv
	cd . && $(VENV)/bin/ansible-lint --profile production roles/ playbooks/

# Two streams side by side (Kubernetes and roles; Docker and faults, then sanity and lint), then the tests that
# need the machine alone: scripts/test.sh, docs/development.md
test: venv venv-target-oldest services images
	@./scripts/test.sh

# DEMO_ARGS="-e demo_platform=kubernetes" runs it on the Kubernetes test API server (docs/roles.md)
demo: venv images
	@mkdir -p .tmp/collections/ansible_collections/zerodown && ln -sfn $(CURDIR) .tmp/collections/ansible_collections/zerodown/rollout
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.tmp/collections $(VENV)/bin/ansible-playbook -i localhost, -c local playbooks/demo.yml -e ansible_python_interpreter=$(CURDIR)/$(PY) $(DEMO_ARGS)

bench: venv images
	$(PY) -m bench.run

# Not part of `make test`: 20 rounds of upgrade + rollback under load while HAProxy is reloaded every 100-300 ms
# (docs/development.md). STRESS_ROUNDS=2 for a short run, STRESS_ARGS="--seed N" to replay a round's reloads.
STRESS_ROUNDS ?= 20
stress: venv images
	$(PY) -m bench.stress_haproxy_reloads --rounds $(STRESS_ROUNDS) $(STRESS_ARGS)

clean:
	rm -rf .tmp tests/output
