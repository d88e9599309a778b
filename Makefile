# Two commands: `make run` and `make test`. Both work on a machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PYTEST_ARGS ?= -n 2

.PHONY: run release test setup setup-dev services-run services-test db-run stop lint typecheck lock bench clean

# Every install is from the hash-locked files (see `make lock`). `make run` needs the runtime
# packages plus the embedded services (requirements-local.txt); the tests, lint and type check need
# all three files, installed in one pip call so pip checks them together.
PIP_INSTALL := $(PY) -m pip install --quiet --require-hashes

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created requirements.txt requirements-local.txt
	$(PIP_INSTALL) -r requirements.txt -r requirements-local.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP_INSTALL) -r requirements.txt -r requirements-local.txt -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

## run: set up, start embedded services, release (migrate, collectstatic), seed the demo, turn on
## backups of the embedded PostgreSQL (archiving, a first good backup and drill, when pgBackRest is
## installed), empty the metrics directory and run web (gunicorn) + workers + beat.
run: setup
	$(PY) scripts/local_services.py run
	$(PY) manage.py db_roles
	$(MAKE) --no-print-directory release
	$(PY) manage.py seed_demo --port $(PORT)
	$(PY) manage.py storage_setup
	$(PY) manage.py seed_documents
	$(PY) manage.py clickhouse_migrate
	$(PY) manage.py seed_events
	$(PY) manage.py export_parquet --quiet
	$(PY) manage.py backup_local_setup
	$(PY) manage.py metrics_reset
	PORT=$(PORT) TENANT_SITE_URL='http://{subdomain}.localhost:$(PORT)' $(VENV)/bin/honcho start -f Procfile

## release: what every deploy runs before it starts the new processes: migrations (as the owner
## role) and the static files whitenoise serves (hashed, compressed copies in STATIC_ROOT).
release:
	$(PY) manage.py migrate --no-input
	$(PY) manage.py collectstatic --no-input --verbosity 0

## test: set up and run the whole suite against real PostgreSQL (and Redis where there is one).
test: setup-dev
	$(PY) scripts/local_services.py test
	METIS_ENV_FILE=var/test.env $(VENV)/bin/pytest $(PYTEST_ARGS)

## stop: stop the embedded PostgreSQL and S3 server that `make run` started.
stop:
	$(PY) scripts/local_services.py stop

## lint: ruff (lint rules and formatting) and the type check; non-zero on any violation.
lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) typecheck

## typecheck: mypy with django-stubs over the packages pyproject.toml lists.
typecheck: setup-dev
	$(VENV)/bin/mypy

## lock: recompile the hash-locked requirements*.txt from the requirements*.in files. Pins stay
## unless an .in changed; `make lock LOCK_ARGS=--upgrade` also takes new transitive releases.
## local and dev are compiled against the runtime lock, so a package has one version everywhere.
LOCK_ARGS ?=
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-find-links --no-emit-index-url --no-emit-trusted-host $(LOCK_ARGS)
lock: setup-dev
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -c requirements.txt -o requirements-local.txt requirements-local.in
	$(PIP_COMPILE) -c requirements.txt -c requirements-local.txt -o requirements-dev.txt \
		requirements-dev.in

## bench: every benchmark under bench/ (each prints ratios against a baseline of the same run).
# The backup benches need pgBackRest, and their plain-tools baseline zstd and openssl (Debian).
bench: setup-dev
	@missing=""; for tool in pgbackrest zstd openssl; do \
		command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	$(PY) scripts/local_services.py test
	for script in bench/[a-z]*.py; do echo "== $$script"; METIS_ENV_FILE=var/test.env $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) var
