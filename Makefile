# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mlscope needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/mlscope demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/explain_speed.py
	$(BIN)/python bench/serve_speed.py
	$(BIN)/python bench/run_index_speed.py
	$(BIN)/python bench/dashboard_speed.py
	$(BIN)/python bench/server_footprint.py
	$(BIN)/python bench/tree_explain_speed.py
	$(BIN)/python bench/sampler_speed.py
	$(BIN)/python bench/compute_button_speed.py

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts .pytest_cache
