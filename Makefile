# Yoda Phi-3 QLoRA pipeline. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION ?= 0.13.9
# uv from PATH, else the one `make install` puts into this Python (python3 -m uv).
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)

# Offline runs and a fresh clone use the placeholder lock; `make build-images` writes the real one.
IMAGE_LOCK ?= $(if $(wildcard images/digests.lock.json),images/digests.lock.json,images/digests.local.json)
PIPELINE_YAML ?= build/pipeline.yaml

# `make run-local RAW_DATA=gs://bucket/yoda.csv TARGET_COLUMN=translation TEST_FRACTION=0.2 SPLIT_SEED=1`
RAW_DATA ?=
TARGET_COLUMN ?=
TEST_FRACTION ?=
SPLIT_SEED ?=
RUN_FLAGS = $(if $(RAW_DATA),--raw-data-uri "$(RAW_DATA)") \
	$(if $(TARGET_COLUMN),--target-column $(TARGET_COLUMN)) \
	$(if $(TEST_FRACTION),--test-fraction $(TEST_FRACTION)) \
	$(if $(SPLIT_SEED),--split-seed $(SPLIT_SEED))

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: uv
uv: # installs uv with pip when it is missing
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"

.PHONY: install
install: uv ## Install every workspace package and the dev tools into .venv (from uv.lock)
	$(UV) sync --all-packages --frozen

.PHONY: test
test: install ## Run the default test suite (no slow or GPU tests)
	$(UV) run --frozen pytest

.PHONY: test-slow
test-slow: install ## Run the slow tests too (GPU tests still skip without CUDA)
	$(UV) run --frozen pytest -m "not gpu"

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

.PHONY: format
format: install ## Apply ruff's formatting and safe fixes
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: compile
compile: install ## Compile the pipeline to $(PIPELINE_YAML) against $(IMAGE_LOCK)
	$(UV) run --frozen yoda-pipeline compile --image-lock $(IMAGE_LOCK) --output $(PIPELINE_YAML)

.PHONY: run-local
run-local: install ## Compile and run the pipeline offline (KFP local runner); RAW_DATA=… to override
	$(UV) run --frozen yoda-pipeline run-local $(RUN_FLAGS)

.PHONY: clean
clean: ## Remove build outputs and local runs
	rm -rf build local_runs .pytest_cache .mypy_cache .ruff_cache
