# Two commands: `make demo` (set up, run the demo) and `make test` (set up, test).
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin

.PHONY: demo test lint report clean

# The runtime packages only (requirements.txt): all that the workflow needs.
$(VENV)/.runtime: requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Tests, linters and the napari viewer on top (requirements-dev.txt).
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/snakemake --cores $(CORES)
	@echo "Results in results/: label_statistics.csv, summary.csv, <sample>/"

report: $(VENV)/.dev demo
	$(BIN)/snakemake --cores $(CORES) all sweep
	$(BIN)/snakemake --report report.html all sweep

test: $(VENV)/.dev
	$(BIN)/pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources .snakemake report.html
