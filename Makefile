# Two entry points, both on a fresh machine:
#   make run    install the pinned dependencies, then run the pipeline on local defaults
#   make test   install the pinned dependencies, then lint and run the test suite
# The virtualenv lives outside the checkout, keyed by the lock file, so clones share it.
PYTHON ?= python3.11
LOCK_HASH := $(shell cat requirements.lock | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/gan-pipeline/venv-$(LOCK_HASH)
OUTPUT_DIR ?= runs/quickstart
PYTEST_ARGS ?= -n 2

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	touch $@

run: install
	$(VENV)/bin/python -m preprocessing.run --source=data/mnist --output_dir=$(OUTPUT_DIR)/data

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
