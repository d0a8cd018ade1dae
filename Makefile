# Daily commands (README, "Commands"). Every target sets up .venv first, once per TORCH_SPEC.
#   make repro   ->  `dvc repro` of the active profile (params.yaml; the embedded default as committed)
#   make test    ->  the whole pytest suite (what CI runs: .ci/run)
#   make smoke   ->  the whole pipeline at toy size in build/smoke/ (the default's results are not touched)
#   make bench   ->  python -m siasamrea.perf, full run, report in build/bench.json
#   make profile PROFILE=smoke  ->  params.yaml for another profile (profiles/README.md)
#   make lab     ->  JupyterLab at the repository root (jupyter_server_config.py: saving strips notebooks/)
#   make lint, make plots (dvc plots show, offline page in dvc_plots/index.html), make shell (prints how to
#   activate the venv)
# TORCH_SPEC picks the torch wheel: the default is the CPU build this project is developed on; on a GPU
# machine use e.g. `make repro TORCH_SPEC=torch==2.5.1`. Changing it reinstalls torch (the stamp names it).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= default
# pytest-xdist workers for `make test` (tests/conftest.py: the smoke pipeline is scheduled first)
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
# One stamp per TORCH_SPEC: `make repro TORCH_SPEC=...` after `make test` installs the requested torch
# instead of silently keeping the previous one.
TORCH_ID := $(shell printf '%s' '$(TORCH_SPEC)' | tr -c 'A-Za-z0-9._-' '_')
STAMP := $(VENV)/.installed-$(TORCH_ID)
RUN := PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup test repro smoke bench profile plots lab lint shell clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

repro: $(STAMP)
	$(RUN) $(BIN)/python -m siasamrea.pipeline.progress $(BIN)/dvc repro

smoke: $(STAMP)
	$(RUN) $(BIN)/python -m siasamrea.pipeline.profiles sandbox smoke build/smoke --repro
	@echo "smoke results: build/smoke/figures, build/smoke/metrics (cd build/smoke && dvc metrics show)"

bench: $(STAMP)
	mkdir -p build
	$(RUN) $(BIN)/python -m siasamrea.perf --out build/bench.json

profile: $(STAMP)
	$(RUN) $(BIN)/python -m siasamrea.pipeline.profiles use $(PROFILE)

plots: $(STAMP)
	$(RUN) $(BIN)/dvc plots show


lab: $(STAMP)
	$(RUN) $(BIN)/jupyter lab --config=jupyter_server_config.py

lint: $(STAMP)
	$(BIN)/ruff check siasamrea tests

shell:
	@echo "source $(VENV)/bin/activate   # then: dvc repro, dvc metrics show, pytest, jupyter lab ..."

clean-venv:
	rm -rf $(VENV)
