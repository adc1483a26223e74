# Nova: `make run` sets up and runs everything; `make test` sets up and runs the tests.
# Both are idempotent. Prerequisites: apt-based Linux (Debian 12 / Ubuntu 22.04+),
# Python 3.11, root or sudo for apt-get.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# .env (optional, see .env.example) overrides the local defaults
ifneq (,$(wildcard .env))
include .env
export
endif

# without DJANGO_SECRET_KEY in the environment, use the generated local one
SECRET_ENV := $(if $(DJANGO_SECRET_KEY)$(DJANGO_SECRET_KEY_FILE),,DJANGO_SECRET_KEY_FILE=$(CURDIR)/var/secret_key)
MANAGE := $(SECRET_ENV) $(PY) manage.py

.PHONY: run test lint venv services services-down services-status test-tools prometheus migrate clean-var \
	cluster-up cluster-down cluster-status bench-load

# requirements.txt is the runtime (the image installs only it); requirements-local.txt
# adds what `make run` needs on a workstation (process supervisor, local broker);
# requirements-test.txt adds the test tools on top of both
$(VENV)/.installed: requirements.txt requirements-local.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is required, found " + sys.version'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-local.txt
	@touch $@

venv: $(VENV)/.installed

$(VENV)/.test-installed: requirements-test.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-test.txt
	@touch $@

services: venv
	bash infra/local/services.sh up

services-down:
	bash infra/local/services.sh down

services-status:
	bash infra/local/services.sh status

# a local secret for DEBUG-off runs; never used outside this checkout
var/secret_key:
	@mkdir -p var
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

migrate: services var/secret_key
	$(MANAGE) migrate --noinput
	$(MANAGE) migrate_clickhouse
	$(MANAGE) ensure_topics
	$(MANAGE) collectstatic --noinput -v0

run: migrate
	$(MANAGE) seed_demo  # first start only: generates the demo passwords into var/demo-credentials.txt
	@echo
	@echo "  Nova is starting under supervisord: a process that exits is restarted (1 s, 2 s, ... backoff);"
	@echo "  Ctrl-C stops every process; 'make services-down' stops the services."
	@echo "    web          http://127.0.0.1:8000/   (admin: /admin/, health: /healthz, /readyz, metrics: /metrics)"
	@echo "    postgres     127.0.0.1:$${NOVA_PG_PORT:-55432}   redis 127.0.0.1:$${NOVA_REDIS_PORT:-56379}"
	@echo "    clickhouse   127.0.0.1:$${NOVA_CH_TCP_PORT:-59000} (native), http://127.0.0.1:$${NOVA_CH_HTTP_PORT:-58123}/"
	@echo "    kafka        127.0.0.1:$${NOVA_KAFKA_PORT:-59092}"
	@echo "    api docs     http://127.0.0.1:8000/api/docs/"
	@echo
	@cat var/demo-credentials.txt 2>/dev/null && echo || true
	@mkdir -p var/run
	@$(PY) infra/local/procfile_supervisor.py Procfile var/run > var/run/supervisord.conf
	$(SECRET_ENV) exec supervisord -c var/run/supervisord.conf

# chromium and its driver for the browser tests (requires_browser), promtool and amtool for the
# monitoring-config tests; not needed by `make run`
test-tools:
	bash infra/local/services.sh test-tools

# Prometheus on http://127.0.0.1:9090/ (alerts: /alerts) scraping the processes of
# `make run`, with infra/prometheus/rules.yml; run it beside `make run`
prometheus: venv var/secret_key
	bash infra/local/services.sh monitoring-tools
	$(MANAGE) run_prometheus $(PROMETHEUS_ARGS)

test: services test-tools $(VENV)/.test-installed
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (lint and format check) and mypy with django-stubs over the whole tree (clean),
# configured in pyproject.toml; and no model change without its migration
lint: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	DJANGO_SECRET_KEY=lint-only $(PY) -m mypy .
	DJANGO_SECRET_KEY=lint-only $(PY) manage.py makemigrations --check --dry-run

# issue 15's load run (docs/benchmarks.md "Load and soak"): a whole Nova in its own
# namespaces driven through the HTTP API; BENCH_LOAD_ARGS are bench/load_stack.py's,
# e.g. BENCH_LOAD_ARGS='--plots docs/img/load -- --seconds 180 --warmup 60 --rate 40'
BENCH_LOAD_ARGS ?= -- --seconds 120 --warmup 30 --rate 40
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-bench.txt
	@touch $@

bench-load: services $(VENV)/.bench-installed var/secret_key
	$(PY) bench/load_stack.py $(BENCH_LOAD_ARGS)

clean-var: services-down
	rm -rf var

# a local ClickHouse cluster (ZooKeeper + two servers; docs/operations/scaling.md), not part of `make run`
cluster-up: venv
	bash infra/local/cluster.sh up

cluster-down:
	bash infra/local/cluster.sh down

cluster-status:
	bash infra/local/cluster.sh status
