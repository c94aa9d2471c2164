# carealert: `make run` starts everything with the demo configuration, `make test` runs the suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := deploy/kafka/kafka.sh

.PHONY: help setup run stop status test lint format unit integration schemas bench kafka-start kafka-stop clean

help:
	@echo "make run    set up and start broker + services with the demo configuration"
	@echo "make stop   stop everything make run started"
	@echo "make test   set up and run lint + the whole test suite"
	@echo "make lint   ruff + mypy --strict;  make unit / make integration: parts of the suite"
	@echo "make bench  throughput and latency figures (bench/results/*.json)"

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) is required (durable-rules needs Python 3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,rocksdb]'
	touch $@

# ajv and ajv-formats for the schema test (tests/integration/test_schema_validators.py).
JS_STAMP := tests/js/node_modules/.installed
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make: npm (Node 20) is required for the schema test" >&2; exit 1; }
	npm ci --prefix tests/js --no-audit --no-fund
	touch $@

setup: $(STAMP) $(JS_STAMP)
	@$(KAFKA) fetch

run: setup
	@deploy/local/run.sh

stop:
	@deploy/local/stop.sh

status:
	@deploy/local/run.sh status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration tests/e2e

# Every benchmark, even after one fails (then exit 1 naming it); each one's processes stopped
# however it ends. The list is bench/run_all.py's; BENCH="ingest e2e" runs only those.
bench: setup
	$(BIN)/python -m bench.run_all $(foreach b,$(BENCH),--only $(b))

schemas: $(STAMP)
	$(BIN)/carealert schemas docs/schemas

kafka-start: setup
	@$(KAFKA) start

kafka-stop:
	@$(KAFKA) stop

clean: stop
	rm -rf .run $(VENV)
