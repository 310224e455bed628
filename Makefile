# The single entry point: demo, tests, sanity, lint, bench.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
OLD_PY := .venv-oldest/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
COLL := .tmp/sanity/ansible_collections/zerodown/rollout

.PHONY: help venv services images units integration sanity lint changelog-lint test demo bench stress clean

help:
	@echo "make demo   - the seed story end to end on the local Docker engine"
	@echo "make test   - the whole test suite (what CI runs)"
	@echo "other targets: venv services images units integration sanity lint bench stress clean"

venv:
	@./scripts/bootstrap.sh

services:
	@./scripts/services.sh

images: services
	@./images/demo-app/build.sh
	@./images/slow-app/build.sh

units: venv
	$(PY) -m pytest -q tests/unit
	$(OLD_PY) -m pytest -q -p no:cacheprovider tests/unit

integration: venv images
	$(PY) -m pytest -q tests/integration

sanity: venv
	@./scripts/sanity.sh

lint: venv
	cd . && $(VENV)/bin/ansible-lint --profile production roles/ playbooks/

test: venv services images
	$(PY) -m pytest -q tests/unit
	$(OLD_PY) -m pytest -q -p no:cacheprovider tests/unit
	$(PY) -m pytest -q tests/integration
	@./scripts/sanity.sh
	$(VENV)/bin/ansible-lint --profile production roles/ playbooks/

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
