# The two commands: `make demo` and `make test`. Both build .venv from nothing.
# `make bench` runs every benchmark under bench/ (docs/benchmarks.md); GNU parallel is optional.
# `make rehearsal` runs all of MIDV-500 at full size, killed three times and resumed (long: not in `make test`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo

.PHONY: demo test lint soak bench rehearsal venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP) lint
	@.ci/browser
	@.ci/tesseract $(VENV)
	@.ci/onnx $(VENV)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile  # two test files at a time: most tests wait on real processes

lint: $(STAMP)
	$(BIN)/python -m ruff check src
	$(BIN)/python -m ruff format --check src
	$(BIN)/python -m mypy

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/bench_discovery.py
	$(BIN)/python bench/bench_decode.py --repeat 3
	$(BIN)/python bench/bench_engine.py overhead frames scaling memory overlap dask
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_stream.py
	@.ci/onnx $(VENV)
	$(BIN)/python bench/bench_models.py

rehearsal: $(STAMP)
	$(BIN)/python bench/rehearsal.py

demo: $(STAMP)
	@.ci/tesseract $(VENV)
	@echo "== midvbatch demo: synthesize a small MIDV-500-format dataset (540x960), localize the document in its 600 annotated frames, read their text fields with Tesseract, score and report"
	rm -rf $(DEMO)
	$(BIN)/midvbatch synth $(DEMO)/dataset --docs 2 --seed 7 --size 540x960
	$(BIN)/midvbatch ls $(DEMO)/dataset
	$(BIN)/midvbatch run $(DEMO)/dataset --out $(DEMO)/run
	$(BIN)/midvbatch report $(DEMO)/run
	$(BIN)/midvbatch report $(DEMO)/run --format html --out $(DEMO)/report.html
	$(BIN)/midvbatch export $(DEMO)/run --out $(DEMO)/results.jsonl
	@if $(BIN)/python -c "import tesserocr; from midvbatch.pipeline.ocr import find_tessdata; find_tessdata()" 2>/dev/null; then \
	  $(BIN)/midvbatch run $(DEMO)/dataset --out $(DEMO)/ocr --processor ocr && \
	  $(BIN)/midvbatch report $(DEMO)/ocr --format html --out $(DEMO)/ocr-report.html && \
	  $(BIN)/midvbatch report $(DEMO)/ocr | sed -n '/^## Text fields/,/^### Text by field$$/p' | sed '$$d'; \
	else echo "== Tesseract is not available here (see .ci/tesseract): the text-field part of the demo is skipped"; fi
	@echo "== results: $(DEMO)/report.html and $(DEMO)/ocr-report.html (open them in a browser), $(DEMO)/results.jsonl (one record per frame), run folders $(DEMO)/run and $(DEMO)/ocr"
	@echo "== run the same 'midvbatch run' command again: it resumes and finds nothing left to do"

clean:
	rm -rf $(VENV) $(DEMO) build src/*.egg-info .pytest_cache
