# Two entry points, both on a fresh machine:
#   make run    install the pinned dependencies, then run the pipeline on local defaults
#   make test   install the pinned dependencies, then lint and run the test suite
# The virtualenv lives outside the checkout, keyed by the lock file, so clones share it.
# The newest supported Python that runs here (tools/find-python); `make PYTHON=...` wins.
SUPPORTED_PYTHONS := 3.13 3.12 3.11
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell tools/find-python $(SUPPORTED_PYTHONS))
endif
# The venv belongs to one interpreter and one lock: both are in its name. Re-running `venv` over
# a venv made by another python3.x (pyenv's vs Debian's, whichever PATH finds first) relinks its
# binary but keeps the first one's stdlib, and nothing imports `ssl` any more.
# The base interpreter, also from inside an activated venv (ours included): the key stays put.
PYTHON_EXE := $(shell $(PYTHON) -c 'import sys; print(sys._base_executable)' 2>/dev/null)
PYTHON_MINOR := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV_KEY := $(shell { echo "$(PYTHON_EXE)"; $(PYTHON) -VV 2>&1; cat requirements.lock; } | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/gan-pipeline/venv-$(VENV_KEY)
OUTPUT_DIR ?= runs/quickstart
PYTEST_ARGS ?= -n 2

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install venv browser run test test-other-pythons test-each-python lint clean

# Content-keyed, not mtime-keyed: a fresh clone's lock file is always newer than the stamp.
# find_spec, not an import: importing TensorFlow here cost every `make run` ~3 s.
# The lock is the whole tree for every supported Python: installed as listed (--no-deps; pip's
# resolver in hash mode trips over extras), each file's hash checked, then checked as a whole.
install:
	@test -n "$(PYTHON_EXE)" || { echo "make: no supported Python (3.11, 3.12, 3.13) runs here$(if $(PYTHON), ($(PYTHON) does not)); install one (Debian 13: apt-get install python3-venv; Debian 12: python3.11-venv; Ubuntu 24.04: python3.12-venv) or pass PYTHON=/path/to/python3.1x" >&2; exit 1; }
	@$(VENV)/bin/python -c 'import ssl, importlib.util as u; assert u.find_spec("tensorflow")' 2>/dev/null && test -f $(VENV)/.installed || { \
	  echo "make: installing requirements.lock into $(VENV)" >&2; \
	  $(PYTHON_EXE) -m venv --clear $(VENV) \
	  && $(VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements.lock \
	  && $(VENV)/bin/pip check >/dev/null \
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
# Then the tests of the checkout's own tooling, and the other supported Pythons.
test: lint browser
	$(VENV)/bin/python -m tests.in_image
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m "rehearsal or checkout"
	@$(MAKE) --no-print-directory test-other-pythons

# Every other supported Python: the lock installs with its hashes, and the `each_python` tests
# pass (every module imports, the wheel installs and runs, preprocess, train with a resume,
# export). CI (CI=true) fails when one is missing; elsewhere it is skipped with a line.
test-other-pythons:
	@for version in $(filter-out $(PYTHON_MINOR),$(SUPPORTED_PYTHONS)); do \
	  python=$$(tools/find-python $$version) || { \
	    [ -z "$$CI" ] || { echo "make: Python $$version not found; CI tests each supported one" >&2; exit 1; }; \
	    echo "make: Python $$version not found; its tests are skipped" >&2; continue; }; \
	  echo "make: Python $$version ($$python): installing the lock, then the each_python tests" >&2; \
	  $(MAKE) --no-print-directory test-each-python PYTHON=$$python || exit 1; \
	done

test-each-python: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m each_python

clean:
	rm -rf runs .pytest_cache
