# Every target works from a fresh clone: the venv is created and the package installed on demand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EI_DATA_DIR ?= ./data
SIM_PORT ?= 8377

.PHONY: install system test lint demo dev bench stress clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,scale]'
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
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
