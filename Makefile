# The two commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo

.PHONY: demo test soak venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

demo: $(STAMP)
	@echo "== midvbatch demo: synthesize a small MIDV-500-format dataset, list it, decode its annotated frames"
	@echo "== (the batch engine, 'midvbatch run', is not built yet: this runs everything that exists end to end)"
	rm -rf $(DEMO)/dataset
	$(BIN)/midvbatch synth $(DEMO)/dataset --docs 2 --seed 7
	$(BIN)/midvbatch ls $(DEMO)/dataset
	$(BIN)/midvbatch frames $(DEMO)/dataset
	@echo "== results: the dataset is in $(DEMO)/dataset; try: $(BIN)/midvbatch ls $(DEMO)/dataset --frames"

clean:
	rm -rf $(VENV) $(DEMO) build src/*.egg-info .pytest_cache
