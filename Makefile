# newsbot: `make chat` to ask questions over corpus/, `make test` to run the tests (`make test-unit`
# for the fast tier: no real model, no real `newsbot` process).
# Both set up .venv/ first. torch is installed on its own, pinned, before anything can pull
# in an unpinned torch (which would be a CUDA build of several GB).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
EXTRAS := dev,openai-like,ollama

.PHONY: setup bytecode chat index test test-unit lint bench clean

setup: $(STAMP) bytecode

# newsbot's own modules compiled ahead (pip compiles what it installs, but newsbot is installed
# editable): a one-question `newsbot ask` spends ~0.3 s compiling them otherwise wherever
# PYTHONDONTWRITEBYTECODE is set. Only changed files are compiled again.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q bot index >/dev/null

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "newsbot needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

chat: $(STAMP) bytecode
	$(BIN)/newsbot chat

index: $(STAMP) bytecode
	$(BIN)/newsbot index

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The fast tier in one worker per core (pytest-xdist); `worksteal` hands a worker that runs dry
# tests still queued for the other, so neither idles at the end. Bytecode is written for this
# run even where PYTHONDONTWRITEBYTECODE is set: each worker imports and collects every test
# module, and pytest can keep its rewritten test modules only as bytecode.
# `make test` stays in one process: its slow tests time real processes and servers.
test-unit: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n auto --dist worksteal -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check bot index tests benchmarks
	$(BIN)/ruff format --check bot index tests benchmarks

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[$(EXTRAS),bench]"
	$(BIN)/python -m benchmarks --data ../shared/eval-data

clean:
	rm -rf $(VENV) .newsbot .pytest_cache
