# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv if missing, installs, runs `shoestring demo` on the default model
#   make test   the same with test extras, then the whole test suite (slow tests included)
VENV ?= .venv
BIN  := $(VENV)/bin

.PHONY: demo test test-fast bench setup clean

setup:
	@bash scripts/setup.sh

demo:
	@bash scripts/setup.sh
	$(BIN)/shoestring demo

test:
	@bash scripts/setup.sh test
	$(BIN)/python -m pytest -q

test-fast:
	@bash scripts/setup.sh test
	$(BIN)/python -m pytest -q -m "not slow"

bench:
	@bash scripts/setup.sh
	$(BIN)/python bench/hooks.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/observe.py
	$(BIN)/python bench/tuned_lens.py
	$(BIN)/python bench/sae.py
	$(BIN)/python bench/steer.py
	$(BIN)/python bench/kv.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/prune.py
	$(BIN)/python bench/gcg.py

clean:
	rm -rf $(VENV) .pytest_cache bench/.cache
