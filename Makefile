# Yoda Phi-3 QLoRA pipeline. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION ?= 0.13.9
# uv from PATH, else the one `make install` puts into this Python (python3 -m uv).
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)

# Offline runs and a fresh clone use the placeholder lock; `make build-images` writes the real one.
IMAGE_LOCK ?= $(if $(wildcard images/digests.lock.json),images/digests.lock.json,images/digests.local.json)
PIPELINE_YAML ?= build/pipeline.yaml

# The variables a user passes (`make help` lists them: `#: NAME | default | meaning`).
#: BASE_MODEL | tiny Phi-3 | run-local's base: smollm2, a hub id (CUDA), a folder or gs://…
BASE_MODEL ?=
#: RAW_DATA | embedded sample | the raw CSV: a path, gs://… or hf://datasets/dvgodoy/yoda_sentences/sentences.csv (the full set)
RAW_DATA ?=
#: TARGET_COLUMN | translation_extra | the CSV column with Yoda's answer
TARGET_COLUMN ?=
#: TEST_FRACTION | 0.1 | the share of rows held out for the test split
TEST_FRACTION ?=
#: SPLIT_SEED | 42 | the split's seed
SPLIT_SEED ?=
#: SET | (none) | any pipeline parameter: SET="lora_r=16 sweep=[{...}]" (docs/parameters.md)
SET ?=
#: RUN | newest local run | tensorboard, report: a local run or a gs:// artifact
RUN ?=
#: MODEL | newest local run | predict: a model folder or gs://…/model
MODEL ?=
#: TEXT | The Force is strong with you. | predict: the sentence to ask
TEXT ?= The Force is strong with you.
#: BY | rouge_l | report: the metric that ranks the samples
BY ?= rouge_l

# What you pass (SET, RAW_DATA, TEXT, …) reaches the programs through the environment, verbatim:
# neither make nor the shell expands it, so `…`, $$(…), quotes and spaces stay text.
USER_VALUES = BASE_MODEL RAW_DATA TARGET_COLUMN TEST_FRACTION SPLIT_SEED SET RUN MODEL TEXT BY
$(foreach name,$(USER_VALUES),$(eval export YODA_MAKE_$(name) := $$(value $(name))))
unexport $(USER_VALUES)
# "$$YODA_MAKE_X" in a recipe: the value of X as one word; $(call given,X,--flag): the flag and
# that word, where X is set.
given = $(if $(value $(1)),$(2) "$$YODA_MAKE_$(1)")
RUN_FLAGS = $(call given,RAW_DATA,--raw-data-uri) $(call given,TARGET_COLUMN,--target-column) \
	$(call given,TEST_FRACTION,--test-fraction) $(call given,SPLIT_SEED,--split-seed) \
	$(if $(value BASE_MODEL),--set "base_model=$$YODA_MAKE_BASE_MODEL") --sets "$$YODA_MAKE_SET"

# Cloud targets (images, Cloud Build, submission) live in cloud.mk.
-include cloud.mk

.PHONY: help
# Columns as wide as the longest name; longer text wraps under its own column, within 100.
HELP_AWK = function show(left, text, at,   line, n, words, i) { \
	n = split(text, words, " "); line = ""; \
	for (i = 1; i <= n; i++) { \
		if (line != "" && at + length(line) + 1 + length(words[i]) > 100) { \
			printf "%-*s%s\n", at, left, line; left = ""; line = words[i] } \
		else line = (line == "" ? words[i] : line " " words[i]) } \
	printf "%-*s%s\n", at, left, line }

help: ## Show this help: the targets, then the variables and their defaults
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '$(HELP_AWK) \
		{name[NR] = $$1; text[NR] = $$2; if (length($$1) > w) w = length($$1)} \
		END {print "Targets:"; for (i = 1; i <= NR; i++) show("  " name[i], text[i], w + 4)}'
	@grep -hE '^#: ' $(MAKEFILE_LIST) | sed 's/^#: //' | awk -F ' [|] ' '$(HELP_AWK) \
		{n[NR] = $$1; d[NR] = $$2; t[NR] = $$3; \
		 if (length($$1) > w) w = length($$1); if (length($$2) > v) v = length($$2)} \
		END {print "\nVariables (make TARGET NAME=value), with their defaults:"; \
		     for (i = 1; i <= NR; i++) show(sprintf("  %-*s  %-*s", w, n[i], v, d[i]), t[i], w + v + 6)}'

.PHONY: uv
uv: # installs uv with pip when it is missing
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"

.PHONY: install
install: uv ## Install every workspace package and the dev tools into .venv (from uv.lock)
	$(UV) sync --all-packages --frozen

.PHONY: test
test: install ## The default suite (not slow, distributed, learning, Docker or GPU tests)
	$(UV) run --frozen pytest

.PHONY: test-slow
test-slow: install ## Run the slow tests: image installs, serving SmolLM2, a small bench-serve
	$(UV) run --frozen pytest -m slow

.PHONY: test-learning
test-learning: install ## SmolLM2-135M learns Yoda through the whole pipeline on the full data set (minutes)
	$(UV) run --frozen pytest -m learning -s

.PHONY: test-distributed
test-distributed: install ## Fine-tuning on 2 CPU ranks (gloo): outputs, loss vs 1 rank, resume, a dead rank
	$(UV) run --frozen pytest -m distributed

.PHONY: test-docker
test-docker: install ## Build the images here, run the pipeline in them, compare with run-local (needs Docker)
	$(UV) run --frozen pytest -m docker

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen hadolint images/*/Dockerfile images/local/*.Dockerfile

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

.PHONY: submit
submit: install ## Check the cloud settings, compile with the image lock, submit to Vertex AI (SET=… overrides)
	$(UV) run --frozen yoda-pipeline submit --image-lock $(IMAGE_LOCK) --output $(PIPELINE_YAML) \
		--sets "$$YODA_MAKE_SET"

.PHONY: check-gcp
check-gcp: install ## Check the Google Cloud set-up: APIs, bucket, Artifact Registry, GPU quota
	$(UV) run --frozen yoda-pipeline check-gcp

.PHONY: parameters-doc
parameters-doc: install ## Rewrite docs/parameters.md from the parameter table (a test checks it is current)
	$(UV) run --frozen python -m yoda_pipeline.reference > docs/.parameters.md.partial
	mv docs/.parameters.md.partial docs/parameters.md

.PHONY: bench
bench: install ## Where the offline loop's time goes: one table, written to docs/benchmarks.md
	$(UV) run --frozen python benchmarks/bench.py

.PHONY: bench-serve
bench-serve: install ## yoda-serve under load, batched and one at a time: requests/s, p50/p95 for 1-16 clients, memory
	$(UV) run --frozen python benchmarks/bench_serve.py

.PHONY: bench-sweep
bench-sweep: install ## A sweep of SmolLM2 CPU recipes through the pipeline, full data (about an hour)
	$(UV) run --frozen python benchmarks/bench_sweep.py

.PHONY: bench-gpu
bench-gpu: install ## Fine-tuning recipes and inference modes on Phi-3-mini's architecture (needs CUDA)
	$(UV) run --frozen python benchmarks/bench_gpu.py

.PHONY: predict
predict: install ## Answer TEXT with a run's model (MODEL=gs://…/model or a local dir; default: newest local run with one)
	$(UV) run --frozen yoda-pipeline predict $(call given,MODEL,--model) "$$YODA_MAKE_TEXT"

.PHONY: tiny-model
tiny-model: install ## Generate the tiny offline Phi-3 model in build/tiny-phi3 (run-local does it too)
	$(UV) run --frozen yoda-make-tiny-model build/tiny-phi3

.PHONY: tensorboard
tensorboard: install ## Fetch a run's TensorBoard logs into logs/ (RUN=gs://… or a local run)
	$(UV) run --frozen yoda-pipeline tensorboard $(call given,RUN,)

.PHONY: report
report: install ## Print a run's aggregate scores and best/worst samples (RUN=…, BY=metric)
	$(UV) run --frozen yoda-pipeline report $(call given,RUN,) --by "$$YODA_MAKE_BY"

.PHONY: test-gpu
test-gpu: install ## Run the GPU tests (4-bit QLoRA); they skip without CUDA
	$(UV) run --frozen pytest -m gpu

.PHONY: clean
clean: ## Remove build outputs and local runs
	rm -rf build local_runs logs .pytest_cache .mypy_cache .ruff_cache
