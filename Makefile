# Two commands: `make run` and `make test`. Both work on a machine with only Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PYTEST_ARGS ?= -n 2

.PHONY: run test setup setup-dev services-run services-test db-run stop lint bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

## run: set up, start embedded services, migrate, seed the demo and run web + worker + beat.
run: setup
	$(PY) scripts/local_services.py run
	$(PY) manage.py db_roles
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo --port $(PORT)
	$(PY) manage.py storage_setup
	$(PY) manage.py seed_documents
	$(PY) manage.py clickhouse_migrate
	$(PY) manage.py seed_events
	$(PY) manage.py export_parquet --quiet
	PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile

## test: set up and run the whole suite against real PostgreSQL (and Redis where there is one).
test: setup-dev
	$(PY) scripts/local_services.py test
	METIS_ENV_FILE=var/test.env $(VENV)/bin/pytest $(PYTEST_ARGS)

## stop: stop the embedded PostgreSQL that `make run` started.
stop:
	$(PY) scripts/local_services.py stop

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## bench: every benchmark under bench/ (each prints ratios against a baseline of the same run).
bench: setup-dev
	$(PY) scripts/local_services.py test
	for script in bench/[a-z]*.py; do echo "== $$script"; METIS_ENV_FILE=var/test.env $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) var
