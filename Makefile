# The two commands a newcomer needs:  make run   and   make test
# Both create .venv on first use and install the project into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint types unit integration e2e browser chromium clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/oye up

test: $(STAMP) lint types chromium
	$(BIN)/pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m unit

integration: $(STAMP)
	$(BIN)/pytest -n auto -m integration

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

# The benchmarks (never part of test): make bench, or make bench BENCH_ARGS=--quick
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

browser: $(STAMP) chromium
	$(BIN)/pytest -m browser

# The dashboard's browser tests drive Debian's chromium (Playwright never downloads one).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
