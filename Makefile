PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-rate bench-memory clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { echo "need Python 3.11 or newer (python3.11 or python3 on PATH)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,fast,metrics,cloud]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff format --check importer tests scripts
	$(BIN)/ruff check importer tests scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy importer

unit: $(STAMP)
	$(BIN)/pytest

# Three mappings (scripts/bench-mappings/) x --workers 1 (pinned) and the default, 1,000,000 rows
# each; the first run generates the files under bench-data/ (git-ignored).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py --scenario throughput --mappings benchmark,crm,wide --workers-list 1,default

# The ceiling per mapping, stateless and with a fresh --state; a night where nothing changed
# against a --dry-run; the shared quota; the fault mix (1% 429s, 0.5% 500s, 0.5% drops).
bench-rate: $(STAMP)
	$(BIN)/python scripts/bench.py --scenario ceiling --mappings benchmark,crm,wide --workers-list 1,default --states none,fresh
	$(BIN)/python scripts/bench.py --scenario unchanged --mappings crm --workers-list 1,default
	$(BIN)/python scripts/bench.py --scenario shared --rows 400000
	$(BIN)/python scripts/faults.py

bench-memory: $(STAMP)
	$(BIN)/python scripts/bench.py --scenario memory --mappings benchmark --workers-list 1,default --rows 10000000

clean:
	rm -rf $(VENV) braze-runs .pytest_cache .mypy_cache .ruff_cache build *.egg-info bench-data
