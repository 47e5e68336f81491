# The Makefile builds the virtual environment itself: `make test` and `make submit SYSTEM=x` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup test lint data-check run submit leaderboard regress bench
SYSTEM ?= video_b1
TASK ?= both

setup: $(STAMP)

# pip (not uv/poetry) takes the pinned torch wheels from this machine's disk
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench
	$(BIN)/ruff format --check harness tests bench

data-check: $(STAMP)
	$(BIN)/abaw data check

run: $(STAMP)
	$(BIN)/abaw run $(SYSTEM) --task $(TASK)

submit: $(STAMP)
	$(BIN)/abaw submit $(SYSTEM) --task $(TASK)

leaderboard: $(STAMP)
	$(BIN)/abaw leaderboard --html leaderboard/report.html

# fails when a default system's validation score drops below leaderboard/baselines.json, or the metric code drifts
regress: $(STAMP)
	$(BIN)/abaw regress

bench: $(STAMP)
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_fusion.py
	$(BIN)/python bench/bench_audio.py
	$(BIN)/python bench/bench_video.py --backbone test_efficientnet --size 64 --images 1024 --batch 64
	$(BIN)/python bench/bench_video.py --backbone efficientnet_b0 --size 224 --images 128 --batch 32
	$(BIN)/python bench/bench_faces.py --frames 32 --detect-size 320 --batch 8
