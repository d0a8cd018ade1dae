# One command sets everything up and runs the main job; one sets everything up and runs the tests.
#   make repro   ->  .venv with every dependency, then `dvc repro` of the embedded default (synthetic benchmark)
#   make test    ->  .venv with every dependency, then the whole pytest suite
#   make lab     ->  JupyterLab at the repository root (jupyter_server_config.py: saving strips notebooks/)
# TORCH_SPEC picks the torch wheel: the default is the CPU build this project is developed on; on a GPU
# machine use e.g. `make repro TORCH_SPEC=torch==2.5.1`.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test repro lab lint clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/dvc repro

lab: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/jupyter lab --config=jupyter_server_config.py

lint: $(STAMP)
	$(BIN)/ruff check siasamrea tests

clean-venv:
	rm -rf $(VENV)
