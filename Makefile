# Two commands on a fresh machine with Python 3.11+ and make:
#   make demo   create .venv if missing, install clvcast, run the main job on bundled data
#   make test   same environment, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install is editable, so clvcast's own modules get no bytecode from pip; compileall
# writes it once, for environments that set PYTHONDONTWRITEBYTECODE (many containers do),
# where every command would otherwise compile them again (about 0.05 s a command).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clvcast demo

# The PostgreSQL output tests need a server: scripts/postgres.sh starts a throwaway one on
# 127.0.0.1 (installing Debian's postgresql if missing); without one they skip, except in CI.
# The Spark tests need Java 17+: scripts/java.sh installs it when missing (same rule).
# Two pytest workers, one test module each at a time (module fixtures are built once); each
# worker gets its own PostgreSQL database (tests/conftest.py).
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks
	bash scripts/java.sh 2>.java-check.log || true
	CLVCAST_TEST_POSTGRES_URL="$$(bash scripts/postgres.sh start 2>.postgres-start.log || true)" \
		$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks notebooks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_summary.py

clean:
	rm -rf $(VENV) scored .pytest_cache
