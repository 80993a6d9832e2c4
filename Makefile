# lutece: the two commands a new user needs are `make demo` and `make test`.
# Both set up .venv on their own (Python 3.11 and make are all a fresh machine needs).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lutece-installed
TORCHSORT_STAMP := $(VENV)/.torchsort-tried
SAMPLE_STAMP := $(VENV)/.pyannote-sample-tried
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: setup demo test test-all lint bench bench-setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/lutece demo

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: setup $(TORCHSORT_STAMP) $(SAMPLE_STAMP) lint
	$(BIN)/python -m pytest -m "not slow" -q

test-all: setup $(TORCHSORT_STAMP) $(SAMPLE_STAMP) lint
	$(BIN)/python -m pytest -q

# torchsort (an anchor) has no wheel for this torch: it is built from its sdist against the
# installed torch, once. Best effort: the tests that compare against it skip without it.
$(TORCHSORT_STAMP): $(STAMP)
	bash benchmarks/install_torchsort.sh $(BIN)/python
	touch $(TORCHSORT_STAMP)

# pyannote.audio's wheel carries a 30 s real two-speaker recording with its RTTM: unpacked
# into .cache/ (not redistributed) for the real-speech test and benchmark row. Best effort.
$(SAMPLE_STAMP): $(STAMP)
	bash benchmarks/fetch_pyannote_sample.sh $(BIN)/python || echo "pyannote.audio's sample not fetched: its test is skipped"
	touch $(SAMPLE_STAMP)

bench-setup: setup $(TORCHSORT_STAMP) $(SAMPLE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'

bench: bench-setup
	$(BIN)/python benchmarks/sorting.py
	$(BIN)/python benchmarks/perturbed.py
	$(BIN)/python benchmarks/ot.py
	$(BIN)/python benchmarks/ot_extensions.py
	$(BIN)/python benchmarks/grouptesting.py
	$(BIN)/python benchmarks/audio_frontends.py
	$(BIN)/python benchmarks/diffstride.py
	$(BIN)/python benchmarks/diarization.py
	$(BIN)/python benchmarks/audiolm.py

clean:
	rm -rf $(VENV) runs build dist .pytest_cache .ruff_cache .cache
