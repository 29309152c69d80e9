# Build, run and ship this SageMaker container. `make help` lists the targets.
# byoc from PATH: keep the virtual environment byoc is installed in active, or make BYOC=/path/to/byoc
BYOC ?= byoc
# The project's own environment when there is one (python3 -m venv .venv), else python3 from PATH
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
# Passed to byoc build and byoc push, e.g. BUILD_ARGS="--build-arg BASE_IMAGE=my-base:tag"
BUILD_ARGS ?=
# auto (Docker when an engine answers), docker or process (no Docker at all)
BACKEND ?= auto

.PHONY: help check-byoc build local-train local-serve predict evaluate validate bench push upgrade test clean

help:
	@echo "make build        build the image (byoc build)"
	@echo "make local-train  train on local_test/ as SageMaker would (byoc local train)"
	@echo "make local-serve  serve the last trained model on 127.0.0.1:8080 (byoc local serve)"
	@echo "make predict      post local_test/payload.csv to the server (byoc local predict)"
	@echo "make evaluate     score the last trained model on local_test/test/ (byoc local evaluate)"
	@echo "make validate     check the image against the SageMaker contract (byoc validate)"
	@echo "make bench        measure serving speed and memory (byoc local bench)"
	@echo "make push         build and push the image to Amazon ECR (byoc push)"
	@echo "make upgrade      bring the runtime up to the installed byoc, keeping your edits (byoc upgrade)"
	@echo "make test         run this project's tests (no Docker needed)"
	@echo "make clean        remove .byoc/ (local jobs, models and logs)"

build: check-byoc
	$(BYOC) build $(BUILD_ARGS)

local-train: check-byoc
	$(BYOC) local train --backend $(BACKEND)

local-serve: check-byoc
	$(BYOC) local serve --backend $(BACKEND)

predict: check-byoc
	$(BYOC) local predict local_test/payload.csv

evaluate: check-byoc
	$(BYOC) local evaluate --backend $(BACKEND)

validate: check-byoc build
	$(BYOC) validate iris-classifier:latest

bench: check-byoc
	$(BYOC) local bench --backend $(BACKEND)

push: check-byoc
	$(BYOC) push $(BUILD_ARGS)

upgrade: check-byoc
	$(BYOC) upgrade

# Every target that runs byoc checks first that it is there, with the fix when it is not.
check-byoc:
	@command -v $(firstword $(BYOC)) >/dev/null 2>&1 || { echo "Error: $(firstword $(BYOC)) is not on PATH: activate the virtual environment byoc is installed in (e.g. . ~/.venvs/byoc/bin/activate), or run make BYOC=/path/to/byoc" >&2; exit 1; }

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
