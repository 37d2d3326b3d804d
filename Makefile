# The README's two commands are `make demo` and `make test`. Everything they need is installed
# by `make setup` into .cache/ (gitignored), so a fresh clone needs nothing else.
SHELL := /bin/bash
VENV := .cache/venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.cache/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup venv tools images test-deps scanners test demo cluster-up cluster-down bench reliability

setup: venv tools test-deps scanners images

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

tools:
	hack/build-tools.sh

# The real node's images (debootstrap, pip), built in setup so no test waits on a registry:
# skipped with the reason where no real node can run.
images: venv tools
	$(PY) -m localcluster images --if-possible

# Debian packages the contract suite (tests/contract: the chart's vineyardd run for real) needs.
test-deps:
	hack/install-test-deps.sh

# checkov for tests/reliability (its own venv: it conflicts with the test extra).
scanners:
	hack/install-scanners.sh

test: setup
	$(PY) -m pytest -q

# The fast lane, about 2 minutes: lint (ruff, the whole repository), types (mypy), the unit and
# chart suites. Needs only the venv, the Debian packages (promtool, for the alert tests) and helm
# and helm3 (built alone, not the other tools); ct lint
# (marker chart_testing) and tests/unit/test_static_checks.py (ruff and mypy again) are left to
# make test.
.PHONY: check
check: venv
	hack/build-tools.sh apt helm helm3
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q tests/unit tests/chart -m "not chart_testing" \
	  --deselect tests/unit/test_static_checks.py

demo: setup
	$(PY) -m localcluster demo

# tests/reliability (scanners, values fuzzing, admission, concurrency, faults on their own
# cluster in .cache/faults-cluster), then docs/reliability.md from the figures they recorded.
reliability: setup
	RELIABILITY_FUZZ_SCALE=1 $(PY) -m pytest -q tests/reliability
	$(PY) hack/gen_reliability_table.py

# The local Kubernetes (localcluster/): state, kubeconfig and logs in .cache/cluster.
cluster-up: tools
	python3 -m localcluster up

cluster-down:
	python3 -m localcluster down

# Benchmarks (bench/README.md) on their own cluster (.cache/bench-cluster, stopped after each
# script); results in bench/results.json and .md, plots in bench/plots/. 10-20 minutes.
bench: venv tools $(VENV)/.bench-installed
	$(PY) bench/overhead.py
	$(PY) bench/ready.py
	$(PY) bench/rollout.py
	$(PY) bench/cost.py
	$(PY) bench/scale.py
	$(PY) bench/etcd_soak.py
	$(PY) bench/report.py

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@
