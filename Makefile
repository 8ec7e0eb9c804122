# `make test` and `make demo` each bootstrap .venv from nothing, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.initspec-installed

.PHONY: test test-slow demo lint fuzz docs conformance bench clean

$(STAMP): pyproject.toml initspec/_stream.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build from this machine's disk first, so nothing pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	# torchtitan without its declared dependencies (datasets, wandb, tensorboard: a training
	# stack no test uses; datasets would also downgrade huggingface_hub). What its model code
	# imports is in the dev extras; tests/real_packages.py says how it imports without triton.
	$(BIN)/pip install -q --no-deps torchtitan==0.3.0
	# mup (tests/test_mup.py checks muP against it) without its declared dependencies: it
	# requires torchvision, which pip resolves to a CUDA torch; `import mup` needs torch and
	# pyyaml only (pandas for its coord_check, which no test uses).
	$(BIN)/pip install -q --no-deps mup==1.0.0
	# timm and torchvision in a folder of their own, off the import path: PyPI's torchvision is
	# linked against CUDA torch, its operators do not load beside this CPU torch, and an
	# importable torchvision that fails breaks `import transformers` (which imports it when
	# found). tests/real_packages.py defines the missing operator schemas, then adds the folder.
	# Their own dependencies (pyyaml, huggingface_hub, safetensors, pillow, numpy) come with
	# transformers and matplotlib.
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/timm-torchvision timm==1.0.31 torchvision==0.28.0
	touch $(STAMP)

# `slow` cases (multi-process and whole-zoo runs that take minutes) run in a target of their own.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# BENCH_7B=1 make bench also runs scenario 9 (an 8B Llama in bfloat16 on the CPU: ~16 GB,
# minutes); without it the page keeps the section its last such run recorded.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --isolate --write

conformance: $(STAMP)
	$(BIN)/python scripts/conformance_table.py

docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz.py -q

lint: $(STAMP)
	$(BIN)/ruff check initspec adapters tests examples
	$(BIN)/mypy

# The built wheel in a fresh venv without torch or jax: import, validate, sample.
.PHONY: wheel-check
wheel-check:
	scripts/check_wheel.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
