# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# torch: a CUDA build where an NVIDIA driver is present, else the local CPU build 2.13.0
# (a bare `torch` on a CPU machine downloads gigabytes of CUDA wheels).
TORCH_SPEC := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.4" || echo "torch==2.13.0")

.PHONY: run test lint bench bench-engines demo clean qt-system-libs models

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,bridge]"
	touch $(STAMP)

run: $(STAMP) qt-system-libs
	$(BIN)/python main.py $(ARGS)

# Qt's X11 plugin needs a few xcb libraries that minimal Debian/Ubuntu images lack.
QT_XCB_LIBS := libxcb-cursor.so.0:libxcb-cursor0 libxcb-icccm.so.4:libxcb-icccm4 \
	libxcb-keysyms.so.1:libxcb-keysyms1 libxkbcommon-x11.so.0:libxkbcommon-x11-0 \
	libxcb-render-util.so.0:libxcb-render-util0 libxcb-image.so.0:libxcb-image0
qt-system-libs:
	@[ "$$(uname)" = Linux ] || exit 0; \
	missing=""; for pair in $(QT_XCB_LIBS); do \
	  ldconfig -p 2>/dev/null | grep -q "$${pair%%:*}" || missing="$$missing $${pair##*:}"; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Qt's X11 libraries:$$missing"; \
	  apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null; }; \
	else \
	  echo "NOTE: Qt's X11 plugin needs:$$missing (sudo apt-get install$$missing)"; \
	fi

# Micro-Manager's own demo device adapters (C++ DemoCamera + Utilities): built (and cached)
# by the shared build script when it and g++ are there, unless MICROMANAGER_PATH is set.
# Without them the demo-stand tests skip and pytest says so.
MM_BUILD := $(abspath ../shared/micromanager/build.sh)
# pytest workers (pytest-xdist; a test file stays on one worker, so module fixtures are
# built once): 2 take the suite on 2 cores from about 10 to about 6 minutes. TEST_WORKERS=0
# runs it in one process (the frame-place races that failed on 2 workers are fixed and
# tested: tests/test_hardware_frame_place.py).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@if [ -z "$$MICROMANAGER_PATH" ] && [ -x "$(MM_BUILD)" ] && command -v g++ >/dev/null; then \
	  echo "building Micro-Manager demo adapters (cached): $(MM_BUILD)"; \
	  mm=$$("$(MM_BUILD)" | tail -n1) || { echo "NOTE: demo adapter build failed"; mm=""; }; \
	else mm="$$MICROMANAGER_PATH"; fi; \
	[ -n "$$mm" ] && export MICROMANAGER_PATH="$$mm"; \
	QT_QPA_PLATFORM=offscreen PYMM_SIGNALS_BACKEND=psygnal $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 \
	  -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python main.py bench all

# ONNX Runtime and OpenVINO against torch on the shipped models (installs the optional
# `engines` extra into the venv first; `make test` never does).
bench-engines: $(STAMP)
	$(BIN)/pip install -q -e ".[engines]"
	$(BIN)/python main.py bench engines

demo: $(STAMP)
	$(BIN)/python main.py demo

# Rebuild the shipped default models from the committed code (about an hour on 2 threads;
# a rebuilt model replaces a shipped one only when it scores better). ARGS=--tiny: seconds.
models: $(STAMP)
	$(BIN)/python main.py rebuild-models $(ARGS)

clean:
	rm -rf $(VENV)
