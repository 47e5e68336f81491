# The Makefile builds the virtual environment itself: `make test` and `make submit SYSTEM=x` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup test lint data-check systems show run submit leaderboard regress regress-small mutation bench paper-check gpu-check
SYSTEM ?= video_b1
TASK ?= both

setup: $(STAMP)

# pip (not uv/poetry) takes the pinned torch wheels from this machine's disk. pip byte-compiles what it installs on
# one core (35 s of the 90); compileall does it on every core instead (18 s on 2), so imports stay fast where
# PYTHONDONTWRITEBYTECODE is set. As with pip, a file this Python cannot compile (torch ships 3.12-only test files) is
# left as it is: compileall's exit status is not an error here.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -c requirements.lock -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		> /dev/null || true
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench
	$(BIN)/ruff format --check harness tests bench

data-check: $(STAMP)
	$(BIN)/abaw data check

systems: $(STAMP)
	$(BIN)/abaw systems

show: $(STAMP)
	$(BIN)/abaw show $(SYSTEM) --task $(TASK)

run: $(STAMP)
	$(BIN)/abaw run $(SYSTEM) --task $(TASK)

submit: $(STAMP)
	$(BIN)/abaw submit $(SYSTEM) --task $(TASK)

leaderboard: $(STAMP)
	$(BIN)/abaw leaderboard --html leaderboard/report.html

# fails when a default system's validation score drops below leaderboard/baselines.json, or the metric code drifts
regress: $(STAMP)
	$(BIN)/abaw regress

# every default system on the synthetic small dataset (48 videos; generated under .abaw on first use), against its
# baselines (about 2 hours on 2 cores; README "The default systems on small")
regress-small: $(STAMP)
	root="$$($(BIN)/python -c 'from harness.data.root import synthetic_dataset; print(synthetic_dataset("small"))')" \
		&& $(BIN)/abaw regress --profile smoke --data "$$root"

# deliberate breaks applied one at a time on a scratch copy: is each caught by `abaw regress` or the focused tests?
# (slow: one reference regress, then the affected nodes retrained per break; see docs/benchmarks.md)
mutation: $(STAMP)
	nice -n 5 $(BIN)/python bench/mutation.py

# every benchmark of bench/, then the goals table of docs/benchmarks.md (about 20 minutes on 2 cores)
bench: $(STAMP)
	$(BIN)/python bench/report.py

# the paper-size architectures (random weights) for a few steps on a subset of the small synthetic dataset
paper-check: $(STAMP)
	$(BIN)/python bench/paper_check.py

# on a GPU machine: the extraction, training and audio benchmarks at paper size, then paper-check (about 7 minutes on an H200)
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python bash bench/gpu_check.sh
