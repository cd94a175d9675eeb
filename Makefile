# Two commands: `make demo` (set up, run the demo) and `make test` (set up, test).
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin

.PHONY: demo test lint report clean

$(BIN)/activate: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/activate
	$(BIN)/snakemake --cores $(CORES)
	@echo "Results in results/: label_statistics.csv, summary.csv, <sample>/"

report: demo
	$(BIN)/snakemake --cores $(CORES) all sweep
	$(BIN)/snakemake --report report.html all sweep

test: $(BIN)/activate
	$(BIN)/pytest

lint: $(BIN)/activate
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources .snakemake report.html
