# The newcomer's path: `make demo` runs the main job, `make test` runs every test.
# Both create .venv and install the project with its dev extra when needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench fuzz clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m node.tools.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/ledger_micro.py

# Coverage-guided fuzzing of peer frames (docs/fuzzing.md): FUZZ_SECONDS per target. New
# inputs and any crash-* or oom-* reproducer land in build/fuzz; the seed corpus is untouched.
FUZZ_SECONDS ?= 60
FUZZ = $(BIN)/python tests/fuzz/fuzz_frames.py
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -timeout=30 \
	-artifact_prefix=build/fuzz/ -print_final_stats=1

fuzz: $(STAMP)
	mkdir -p build/fuzz/decode build/fuzz/unpack build/fuzz/replica
	$(FUZZ) decode build/fuzz/decode tests/fuzz/corpus/frames -max_len=4096 $(FUZZ_FLAGS)
	$(FUZZ) unpack build/fuzz/unpack tests/fuzz/corpus/frames -max_len=4096 $(FUZZ_FLAGS)
	$(FUZZ) replica build/fuzz/replica tests/fuzz/corpus/replica -max_len=8192 $(FUZZ_FLAGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
