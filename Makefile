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

.PHONY: install browser run test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	touch $@

run: install
	$(VENV)/bin/python -m pipeline.run --output_dir=$(OUTPUT_DIR)

lint: install
	$(VENV)/bin/ruff check .

# Debian's chromium renders the gallery in the browser test; installed when we may (root + apt).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: chromium is not installed; the gallery browser test will be skipped"

test: lint browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
