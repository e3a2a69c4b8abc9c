# Two entry points, both on a fresh machine:
#   make run    install the pinned dependencies, then run the pipeline on local defaults
#   make test   install the pinned dependencies, then lint and run the test suite
# The virtualenv lives outside the checkout, keyed by the lock file, so clones share it.
PYTHON ?= python3.11
# The venv belongs to one interpreter and one lock: both are in its name. Re-running `venv` over
# a venv made by another python3.11 (pyenv's vs Debian's, whichever PATH finds first) relinks its
# binary but keeps the first one's stdlib, and nothing imports `ssl` any more.
# The base interpreter, also from inside an activated venv (ours included): the key stays put.
PYTHON_EXE := $(shell $(PYTHON) -c 'import sys; print(sys._base_executable)' 2>/dev/null)
VENV_KEY := $(shell { echo "$(PYTHON_EXE)"; $(PYTHON) -VV 2>&1; cat requirements.lock; } | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/gan-pipeline/venv-$(VENV_KEY)
OUTPUT_DIR ?= runs/quickstart
PYTEST_ARGS ?= -n 2

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install venv browser run test lint clean

# Content-keyed, not mtime-keyed: a fresh clone's lock file is always newer than the stamp.
# find_spec, not an import: importing TensorFlow here cost every `make run` ~3 s.
install:
	@test -n "$(PYTHON_EXE)" || { echo "make: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	@$(VENV)/bin/python -c 'import ssl, importlib.util as u; assert u.find_spec("tensorflow")' 2>/dev/null && test -f $(VENV)/.installed || { \
	  echo "make: installing requirements.lock into $(VENV)" >&2; \
	  $(PYTHON_EXE) -m venv --clear $(VENV) \
	  && $(VENV)/bin/pip install --quiet --upgrade pip \
	  && $(VENV)/bin/pip install --quiet -r requirements.lock \
	  && touch $(VENV)/.installed; }

# Prints the venv's path: `source "$$(make -s venv)/bin/activate"`.
venv: install
	@echo $(VENV)

run: install
	$(VENV)/bin/python -m pipeline.run --output_dir=$(OUTPUT_DIR)

lint: install
	$(VENV)/bin/ruff check .

# Debian's chromium renders the gallery in the browser test; installed when we may (root + apt).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: chromium is not installed; the gallery browser test will be skipped"

# The suite runs as the image runs it (cloudbuild.yaml's test step, in a directory holding what the
# Dockerfile copies: tests/in_image.py); then the cloud rehearsal, which that step leaves out.
test: lint browser
	$(VENV)/bin/python -m tests.in_image
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m rehearsal

clean:
	rm -rf runs .pytest_cache
