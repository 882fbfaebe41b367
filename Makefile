# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# torch: a CUDA build where an NVIDIA driver is present, else the local CPU build 2.13.0
# (a bare `torch` on a CPU machine downloads gigabytes of CUDA wheels).
TORCH_SPEC := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.4" || echo "torch==2.13.0")

.PHONY: run test lint bench demo clean

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,bridge]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python main.py $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen PYMM_SIGNALS_BACKEND=psygnal $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python main.py bench all

demo: $(STAMP)
	$(BIN)/python main.py demo

clean:
	rm -rf $(VENV)
