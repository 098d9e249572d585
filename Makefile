# Two commands: `make serve` (install, pull the default model, start on 127.0.0.1:8080)
# and `make test` (install with test dependencies, run the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= qwen2.5-coder-0.5b-instruct
TEST_MODEL := smollm2-135m-instruct

.PHONY: serve test install install-test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	scripts/install_llama.sh $(BIN)/pip
	scripts/install_llama_server.sh $(BIN)/pip
	$(BIN)/pip install -q -e '.[embeddings,transformers]'

install-test: $(BIN)/python
	scripts/install_llama.sh $(BIN)/pip
	scripts/install_llama_server.sh $(BIN)/pip
	$(BIN)/pip install -q -e '.[embeddings,transformers,tracing,test]'

serve: install
	$(BIN)/hybridgate models pull $(MODEL)
	$(BIN)/hybridgate serve --model $(MODEL)

test: install-test
	$(BIN)/hybridgate models pull $(TEST_MODEL)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check src tests bench

bench: install-test
	$(BIN)/pip install -q -e '.[embeddings,transformers,tracing,bench,test]'
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
