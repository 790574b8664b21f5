# LightCLIP toolkit. `make help` lists the targets; each one sets up .venv first if it is missing.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NLTK_DATA ?= $(CURDIR)/.nltk_data
export NO_ALBUMENTATIONS_UPDATE := 1

ENCODER ?= swin_nano
OBJECTIVES ?= lightclip
ARGS ?=
RECIPE ?= recipes/data/yfcc15m_v2.yaml
METADATA ?=
OUT ?= data/yfcc15m_v2
DATA ?= $(OUT)
RUN_DIR ?= runs/$(ENCODER)$(if $(filter clip,$(OBJECTIVES)),_clip,)
CKPT ?= $(RUN_DIR)
DATASETS ?= cifar10
ROOT ?= data/eval
PYTEST_ARGS ?=

.PHONY: help setup test test-quick test-all lint bench data train eval demo export summary clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade -q pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,export,interop]'
	$(BIN)/python scripts/provision_wordnet.py
	@touch $(STAMP)

setup: $(STAMP) ## create .venv, install the project at the versions of constraints.txt, provision WordNet data offline where possible

test: $(STAMP) ## the whole suite, slow end-to-end tests included (what CI runs)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: test ## alias of `test`

test-quick: $(STAMP) ## the quick tier: unit tests without the slow end-to-end ones
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check lightclip lightclip_demo pipeline tests bench scripts

summary: $(STAMP) ## parameter and MAC table of every encoder
	$(BIN)/python -m lightclip summary

bench: $(STAMP) ## run the benchmarks, JSON under bench/results/
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## remove runs and caches (keeps .venv)
	rm -rf runs .pytest_cache .ruff_cache

-include mk/*.mk
