# Warden's commands. `make run` starts everything on the embedded default; `make test` runs the suite.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-dev run test bench lint format migrate clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

# The dashboards' front-end libraries: installed from npm exactly as package-lock.json pins them,
# then the two files the pages load (and Chart.js's source map) are copied to static/vendor/ (served by Django, never a CDN).
VENDOR := static/vendor
$(VENDOR)/.installed: package.json package-lock.json Makefile
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/chart.js/dist/chart.umd.min.js \
	  node_modules/chart.js/dist/chart.umd.min.js.map $(VENDOR)/
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed $(VENDOR)/.installed  ## Create .venv and install the runtime requirements

install-dev: $(VENV)/.dev-installed $(VENDOR)/.installed  ## Install the development and test requirements too

run: install  ## Set up SQLite, the admin user and demo data; start the web server and a Celery worker
	bin/warden-run

test: install-dev  ## Run the whole test suite (PYTEST_ARGS="-k foo" to narrow it)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install  ## Benchmark the decision path: engine, HTTP on SQLite and PostgreSQL (BENCH_ARGS="--quick")
	$(PY) benchmarks/decisions.py $(BENCH_ARGS)

.PHONY: bench-audit
bench-audit: install  ## What the audit trail costs a decision: with and without, sealing, verify (BENCH_ARGS="--quick")
	$(PY) benchmarks/audit.py $(BENCH_ARGS)

.PHONY: bench-guardian
bench-guardian: install  ## The guardian's scorers on shared/eval: detection, false positives, latency (BENCH_ARGS="--split validation")
	$(PY) benchmarks/guardian.py $(BENCH_ARGS)

.PHONY: bench-guardian-slm
bench-guardian-slm: install-dev  ## The guardian SLM: detection with and without it (validation and all rows), latency
	$(PY) benchmarks/guardian_slm.py $(BENCH_ARGS)

.PHONY: train-guardian
train-guardian: install-dev  ## Train the guardian SLM with PyTorch on the CPU (~20 min); writes guardian/models/warden-guardian.gguf
	$(PY) manage.py guardian_train_slm $(TRAIN_ARGS)

.PHONY: bench-dashboards
bench-dashboards: install  ## The dashboards over 1,000,000 tool calls on PostgreSQL: server time per page (BENCH_ARGS="--quick")
	$(PY) benchmarks/dashboards.py $(BENCH_ARGS)

lint: install-dev  ## ruff, formatting, mypy and the import-layer contract
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: install-dev  ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: install  ## Apply database migrations
	$(PY) manage.py migrate

clean:  ## Remove the local database, queues and collected static files (keeps .venv and node_modules)
	rm -rf var $(VENDOR)
