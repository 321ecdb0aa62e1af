# Every target works from a fresh clone: the venv is created and the package installed on demand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EI_DATA_DIR ?= ./data
SIM_PORT ?= 8377

.PHONY: install system test test-newest lint demo dev bench stress clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,scale,ui,dg]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ei_assets tests bench
	$(BIN)/mypy

# Debian packages the tests use: headless Chromium opens the HTML report; the scale-out tests run
# a Postgres of their own.
SYSTEM_PACKAGES := chromium postgresql
system:
	@{ command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); } \
	  || { echo "make test needs Debian's $(SYSTEM_PACKAGES): sudo apt-get install $(SYSTEM_PACKAGES)"; exit 1; }

test: $(STAMP) system lint
	$(BIN)/python -m pytest -q

# The plugin beside the newest dagster 1.13 and duckdb 2.x a host may run, in a venv of its own:
# installing ei_assets (no extras) must change neither and leave `pip check` clean, and the
# plugin's tests pass there (`dg` only exists for the pinned dagster: its test is skipped).
NEWEST := .venv-newest
HOST_PACKAGES := 'dagster>=1.13,<1.14' 'duckdb>=2,<3'
NEWEST_TESTS := tests/test_plugin.py tests/test_package.py tests/test_warehouse.py tests/test_queries.py \
	tests/test_isolation.py
test-newest:
	rm -rf $(NEWEST) && $(PYTHON) -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install -q --upgrade pip
	$(NEWEST)/bin/python -m pip install -q $(HOST_PACKAGES)
	$(NEWEST)/bin/python -m pip freeze | grep -iE '^(dagster|dagster-[a-z-]+|duckdb)==' > $(NEWEST)/host.txt
	$(NEWEST)/bin/python -m pip install -q -e '.[dev]'
	$(NEWEST)/bin/python -m pip freeze | grep -iE '^(dagster|dagster-[a-z-]+|duckdb)==' \
	  | diff $(NEWEST)/host.txt - \
	  || { echo "installing ei_assets changed the host's packages (above)"; exit 1; }
	$(NEWEST)/bin/python -m pip check
	@echo "host packages, unchanged: $$(tr '\n' ' ' < $(NEWEST)/host.txt)"
	EI_TEST_WITHOUT_DG=1 $(NEWEST)/bin/python -m pytest -q $(NEWEST_TESTS)

demo: $(STAMP)
	EI_DATA_DIR=$(EI_DATA_DIR) $(BIN)/ei-assets demo

# The Dagster UI on 127.0.0.1:3000. Without EI_API_KEY it runs against the bundled simulator.
dev: $(STAMP)
	EI_DATA_DIR=$(abspath $(EI_DATA_DIR)) SIM_PORT=$(SIM_PORT) $(BIN)/python -m ei_assets.dev

bench: $(STAMP)
	$(BIN)/python -m bench

# 50 refreshes under CPU contention, counting native crashes (see bench/stress.py)
stress: $(STAMP)
	$(BIN)/python -m bench.stress

clean:
	rm -rf $(VENV) $(NEWEST) .pytest_cache .ruff_cache .hypothesis
