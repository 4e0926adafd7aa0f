# Two entry points, each sets up .venv first (once, and again when pyproject.toml changes):
#   make run    the default workflow: snakemake --cores all, with run-level progress every minute
#   make test   the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# Workflow jobs call `python -m curriculum_bench`; they must find the venv's python.
export PATH := $(BIN):$(PATH)

.PHONY: run test setup clean
# While snakemake runs, every PROGRESS_EVERY seconds: runs finished and running (with the last
# line of their log), and the time left (python -m curriculum_bench progress; README.md).
PROGRESS_EVERY ?= 60
run: setup
	@( while sleep $(PROGRESS_EVERY); do python -m curriculum_bench progress || true; done ) & loop=$$!; \
	snakemake --cores all; status=$$?; kill $$loop 2>/dev/null; \
	python -m curriculum_bench progress || true; exit $$status

test: setup
	python -m pytest

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:  # generated artifacts only; keeps .venv
	rm -rf resources results checkpoints logs paper_tables .snakemake
