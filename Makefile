# Build, run and ship this SageMaker container. `make help` lists the targets.
BYOC ?= byoc
PYTHON ?= python3
# Passed to byoc build and byoc push, e.g. BUILD_ARGS="--build-arg BASE_IMAGE=my-base:tag"
BUILD_ARGS ?=
# auto (Docker when an engine answers), docker or process (no Docker at all)
BACKEND ?= auto

.PHONY: help build local-train local-serve predict validate bench push test clean

help:
	@echo "make build        build the image (byoc build)"
	@echo "make local-train  train on local_test/ as SageMaker would (byoc local train)"
	@echo "make local-serve  serve the last trained model on 127.0.0.1:8080 (byoc local serve)"
	@echo "make predict      post local_test/payload.csv to the server (byoc local predict)"
	@echo "make validate     check the image against the SageMaker contract (byoc validate)"
	@echo "make bench        measure serving speed and memory (byoc local bench)"
	@echo "make push         build and push the image to Amazon ECR (byoc push)"
	@echo "make test         run this project's tests (no Docker needed)"
	@echo "make clean        remove .byoc/ (local jobs, models and logs)"

build:
	$(BYOC) build $(BUILD_ARGS)

local-train:
	$(BYOC) local train --backend $(BACKEND)

local-serve:
	$(BYOC) local serve --backend $(BACKEND)

predict:
	$(BYOC) local predict local_test/payload.csv

validate: build
	$(BYOC) validate iris-classifier:latest

bench:
	$(BYOC) local bench --backend $(BACKEND)

push:
	$(BYOC) push $(BUILD_ARGS)

test:
	$(PYTHON) -m pytest tests

clean:
	rm -rf .byoc

# ---- byoc's own targets (not part of the generated project) ----
.PHONY: quickstart check lint typecheck sync-root

# Set up byoc, then scaffold, train, serve and predict (Docker when an engine answers).
quickstart:
	./scripts/quickstart

# Install byoc with its test tools, then lint, type-check and run every test.
check:
	./scripts/check

lint:
	ruff check src tests tools benchmarks

typecheck:
	mypy

sync-root:
	$(PYTHON) tools/sync_root.py
