# Image targets: requirements, Dockerfile lint, Cloud Build, trigger, and the images built and run
# here (build-images-local, run-docker). Included by the Makefile.
#
#   make requirements                        # after any change to uv.lock
#   make build-images PROJECT_ID=my-project REGION=europe-west4 BUCKET=my-bucket
#   make trigger GITHUB_OWNER=me GITHUB_REPO=yoda BUILD_SERVICE_ACCOUNT=builder@my-project.iam.gserviceaccount.com
#
# Each setting defaults to its YODA_… environment variable, then to that line of .env.

dotenv = $(shell sed -n 's/^$(1)=//p' .env 2>/dev/null | tail -n 1)
setting = $(or $($(1)),$(call dotenv,$(1)))

PROJECT_ID ?= $(call setting,YODA_PROJECT_ID)
REGION ?= $(call setting,YODA_REGION)
REPOSITORY ?= $(or $(call setting,YODA_ARTIFACT_REPOSITORY),yoda)
BUCKET ?= $(call setting,YODA_BUCKET)
SUBMIT ?= false
# Read by the build's optional submit step (SUBMIT=true).
RAW_DATA_URI ?= $(call setting,YODA_RAW_DATA_URI)
SERVICE_ACCOUNT ?= $(call setting,YODA_SERVICE_ACCOUNT)
# The images' tag and the bucket folder of this build: the commit, marked when the tree differs from it.
IMAGE_TAG ?= $(shell git rev-parse --short=7 HEAD)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
# `make trigger`: the GitHub repository (default: the origin remote) and the build's service account.
GITHUB_OWNER ?= $(shell git remote get-url origin 2>/dev/null | sed -nE 's#.*github\.com[:/]([^/]+)/.*#\1#p')
GITHUB_REPO ?= $(shell git remote get-url origin 2>/dev/null | sed -nE 's#.*github\.com[:/][^/]+/([^/]+)$$#\1#p' | sed 's/\.git$$//')
BUILD_SERVICE_ACCOUNT ?= $(call setting,YODA_BUILD_SERVICE_ACCOUNT)
TRIGGER_NAME ?= yoda-images-on-main

# $(call require,VARIABLE,HINT): stop with one line naming what is missing.
require = $(if $(strip $($(1))),,$(error $(1) is not set: pass $(1)=… or $(2)))
CLOUD_SUBSTITUTIONS = _REGION=$(REGION),_REPOSITORY=$(REPOSITORY),_BUCKET=$(BUCKET),_SUBMIT=$(SUBMIT),_RAW_DATA_URI=$(RAW_DATA_URI),_SERVICE_ACCOUNT=$(SERVICE_ACCOUNT)

# Each image installs only its step's locked dependencies. The CUDA PyTorch base image provides
# torch, triton and torch's CUDA wheels (CUDA 12.9): exporting the lock's 12.8 set would replace or
# shadow them, so those images leave them out.
REQUIREMENTS_DIR ?= images
TORCH_PROVIDED = torch triton $(shell sed -n 's/^name = "\(nvidia-[^"]*\)"/\1/p' uv.lock)
export_requirements = mkdir -p $(REQUIREMENTS_DIR)/$(1) && $(UV) export --frozen --quiet \
	--package yoda-$(subst _,-,$(1)) --all-extras --no-dev --no-emit-workspace --no-header \
	$(addprefix --no-emit-package ,$(2)) --output-file $(REQUIREMENTS_DIR)/$(1)/requirements.txt \
	&& echo "wrote $(REQUIREMENTS_DIR)/$(1)/requirements.txt"

.PHONY: requirements
requirements: uv ## Export each image's locked dependencies from uv.lock to images/<step>/requirements.txt
	@$(call export_requirements,data_transformation)
	@$(call export_requirements,fine_tuning,$(TORCH_PROVIDED))
	@$(call export_requirements,inference,$(TORCH_PROVIDED))
	@$(call export_requirements,evaluation)
	@$(call export_requirements,registry)

.PHONY: lint-docker
lint-docker: install ## Lint every Dockerfile with hadolint
	$(UV) run --frozen hadolint images/*/Dockerfile images/local/*.Dockerfile

.PHONY: build-images
build-images: ## Build and push the step images with Cloud Build; fetch their digests to images/digests.lock.json
	$(call require,PROJECT_ID,set YODA_PROJECT_ID (environment or .env))
	$(call require,REGION,set YODA_REGION (environment or .env))
	$(call require,BUCKET,set YODA_BUCKET (environment or .env))
	gcloud builds submit --project=$(PROJECT_ID) --region=$(REGION) --config=cloudbuild.yaml \
		--substitutions=$(CLOUD_SUBSTITUTIONS),SHORT_SHA=$(IMAGE_TAG) .
	gcloud storage cp gs://$(BUCKET)/pipelines/$(IMAGE_TAG)/digests.lock.json images/digests.lock.json

.PHONY: trigger
trigger: ## Create the Cloud Build trigger that runs cloudbuild.yaml on every push to main
	$(call require,PROJECT_ID,set YODA_PROJECT_ID (environment or .env))
	$(call require,REGION,set YODA_REGION (environment or .env))
	$(call require,BUCKET,set YODA_BUCKET (environment or .env))
	$(call require,GITHUB_OWNER,add a github.com origin remote)
	$(call require,GITHUB_REPO,add a github.com origin remote)
	$(call require,BUILD_SERVICE_ACCOUNT,set YODA_BUILD_SERVICE_ACCOUNT (a service account email))
	gcloud builds triggers create github --project=$(PROJECT_ID) --region=$(REGION) \
		--name=$(TRIGGER_NAME) --repo-owner=$(GITHUB_OWNER) --repo-name=$(GITHUB_REPO) \
		--branch-pattern='^main$$' --build-config=cloudbuild.yaml \
		--service-account=projects/$(PROJECT_ID)/serviceAccounts/$(BUILD_SERVICE_ACCOUNT) \
		--substitutions=$(CLOUD_SUBSTITUTIONS)

# ---- The images built and run on this machine (no GCP) ---------------------------------------
#   make build-images-local && make run-docker      # needs a Docker engine (root) and debootstrap
# The same build script as Cloud Build (images/build-push.sh), a registry on 127.0.0.1 instead of
# Artifact Registry, stand-in bases where the public ones cannot be pulled (images/local/).
LOCAL_REGISTRY ?= 127.0.0.1:5000
# The registry's storage is a cache, like Docker's own image store: kept across clones and
# `make clean`, so a rebuild pushes only the layers that changed.
LOCAL_REGISTRY_STORAGE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/yoda-phi3/registry
DOCKER_IMAGE_LOCK ?= images/digests.docker.json

.PHONY: build-images-local
build-images-local: install ## Build the 5 images here, push them to a registry on 127.0.0.1, lock their digests, compile
	bash images/local/build-local.sh $(LOCAL_REGISTRY) $(LOCAL_REGISTRY_STORAGE) $(DOCKER_IMAGE_LOCK)
	$(UV) run --frozen yoda-pipeline compile --image-lock $(DOCKER_IMAGE_LOCK) --output build/pipeline.docker.yaml

.PHONY: run-docker
run-docker: install ## Run the pipeline offline in the images of build-images-local (KFP's DockerRunner)
	$(UV) run --frozen yoda-pipeline run-docker --image-lock $(DOCKER_IMAGE_LOCK) $(RUN_FLAGS)

.PHONY: registry-stop
registry-stop: ## Stop the local registry that build-images-local started
	bash images/local/registry.sh stop $(LOCAL_REGISTRY) $(LOCAL_REGISTRY_STORAGE)

# `make cache-base-model` (SOURCE=hub id, default YODA_BASE_MODEL; DESTINATION=gs://…, default
# gs://BUCKET/models/NAME): one copy of the base model per bucket instead of two hub downloads a run.
SOURCE ?=
DESTINATION ?=
.PHONY: cache-base-model
cache-base-model: install ## Copy the base model from the hub into the bucket once (then YODA_BASE_MODEL=gs://…)
	$(UV) run --frozen yoda-pipeline cache-base-model $(if $(SOURCE),--source "$(SOURCE)") \
		$(if $(DESTINATION),--destination "$(DESTINATION)")

# ---- The registered model online ------------------------------------------------------------
#   make deploy                       # the Model Registry's default version on an endpoint (costs!)
#   make ask-endpoint TEXT="The Force is strong with you."
#   make undeploy                     # undeploy and delete the endpoint: the billing stops
.PHONY: deploy
deploy: install ## Deploy the registry's default version to an endpoint (1 T4; says the cost first)
	$(UV) run --frozen yoda-pipeline deploy

.PHONY: ask-endpoint
ask-endpoint: install ## Ask the endpoint: make ask-endpoint TEXT="…"
	$(UV) run --frozen yoda-pipeline ask-endpoint "$$YODA_MAKE_TEXT"

.PHONY: undeploy
undeploy: install ## Undeploy everything and delete the endpoint
	$(UV) run --frozen yoda-pipeline undeploy
