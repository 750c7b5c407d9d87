# The two commands a new user needs:  make demo  and  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo demo-cluster test unit e2e integration lint controlplane node runners gitops helm bench mutate fuzz clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

## demo: start the demo app fresh, let greenloop converge it, stop the app
DEMO_CTL := $(BIN)/python examples/demo/app/ctl.py
demo: $(STAMP)
	@$(DEMO_CTL) stop >/dev/null; $(DEMO_CTL) reset && $(DEMO_CTL) start
	@$(BIN)/greenloop run examples/demo/validation.yaml; rc=$$?; \
	  $(DEMO_CTL) stop; exit $$rc

## demo-cluster: the demo in a cluster, greenloop installed from its Helm chart on a real
## node on this machine (needs root): build (cached), tools/controlplane/up --node --chart,
## demo-shop and its StagingValidation applied, wait until Ready, print, tear down
demo-cluster: $(STAMP) controlplane node helm
	PYTHON=$(BIN)/python tools/controlplane/demo-cluster

## test: every test (unit, e2e, integration against a real control plane)
test: $(STAMP) controlplane node runners gitops helm
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

e2e: $(STAMP) runners gitops
	$(BIN)/python -m pytest tests/e2e

integration: $(STAMP) controlplane node gitops helm
	$(BIN)/python -m pytest tests/integration

## runners: install (once, cached) Jest, Vitest, Playwright, gotestsum and Surefire for
## the runner adapters' e2e tests (needs node, npm, go, mvn and java on PATH)
runners:
	tools/runners/setup

## controlplane: build (once, cached) kube-apiserver, etcd, controllers and kwok
controlplane:
	tools/controlplane/build

## gitops: build (once, cached) the gopher-lua runner of config/argocd/health.lua and the
## kstatus program (tools/gitops/build) that the GitOps health tests run
gitops:
	tools/gitops/build

## helm: build (once, cached) helm for the chart tests (tests/integration/test_chart.py)
helm:
	tools/helm/build

## node: build (once, cached) containerd, kubelet, kube-proxy, pause and the test images
node: $(STAMP) controlplane
	tools/node/build
	PYTHON=$(BIN)/python tools/images/build

lint: $(STAMP)
	$(BIN)/ruff check operator tests bench examples tools
	$(BIN)/mypy
	$(BIN)/lint-imports

## fuzz: the JUnit reader and the spec loader on mutated inputs (tests/fuzz), bounded:
## FUZZ_EXAMPLES inputs per target, and at most FUZZ_SECONDS in all
FUZZ_EXAMPLES ?= 10000
FUZZ_SECONDS  ?= 600
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout $(FUZZ_SECONDS) \
	  $(BIN)/python -m pytest tests/fuzz -q -p no:cacheprovider --timeout=$(FUZZ_SECONDS)

bench: $(STAMP)
	$(BIN)/python bench/junit_ingest.py
	$(BIN)/python bench/loop_overhead.py
	$(BIN)/python bench/engine_rerun.py
	$(BIN)/python bench/classify_lines.py
	$(BIN)/python bench/classify_scale.py
	$(BIN)/python bench/store_scale.py
	$(BIN)/python bench/report_render.py
	$(BIN)/python bench/shards.py --node
	$(BIN)/python bench/controlplane_start.py
	$(BIN)/python bench/node_start.py
	$(BIN)/python bench/operator_latency.py
	$(BIN)/python bench/target_change.py
	$(BIN)/python bench/kstatus_window.py
	$(BIN)/python bench/operator_scale.py
	$(BIN)/python bench/operator_scale.py --sizes 1000 --workers 64 --finish-within 60

## mutate: mutation testing of the core with mutmut (docs/testing.md "Mutation testing");
##   MODULES="engine classify" narrows it (engine classify junit status shards), MUTATE_BUDGET=seconds bounds it (default 5400)
mutate: $(STAMP)
	tools/mutate $(MODULES)

clean:
	rm -rf $(VENV) .greenloop .pytest_cache .mypy_cache .ruff_cache .mutmut
