# Two entry points for a fresh machine (see README):
#   make example   set up, then render and validate the example federation's staging member
#                  (make example DEPLOY_TO=path/to/kubeconfig also deploys it to that cluster)
#   make test      set up with test dependencies, then run the whole test suite (and the
#                  helm-using end-to-end tests once more with helm 3)
SHELL := /bin/bash
# The example federation's secrets are encrypted to a TEST-ONLY key; real operators set their own.
export SOPS_AGE_KEY_FILE ?= $(CURDIR)/tests/keys/test-only-operator.agekey
MEMBER ?= staging

.PHONY: example test setup setup-dev
example: setup
	.venv/bin/python scripts/example $(MEMBER) $(if $(DEPLOY_TO),--kubeconfig $(DEPLOY_TO))

test: setup-dev
	.venv/bin/python -m pytest -n auto -q tests
	@echo "again with helm 3 (DEPLOYER_HELM=helm3): the tests that deploy and validate with helm"
	DEPLOYER_HELM=helm3 .venv/bin/python -m pytest -n auto -q -p no:randomly \
	  tests/e2e/test_deploy.py tests/e2e/test_validate.py tests/e2e/test_prerequisites.py \
	  tests/e2e/test_interrupts.py tests/e2e/test_real_federation.py \
	  tests/fakes/test_kube_api_helm.py tests/fakes/test_chart_repo.py

setup:
	scripts/bootstrap

setup-dev:
	scripts/bootstrap --dev
