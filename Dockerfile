# syntax=docker/dockerfile:1
# One image for the trainer (the Vertex AI CustomJob container) and the Beam workers (Dataflow's
# --sdk_container_image). Dependencies come from the same requirements.lock that CI installs.
# One Python version names both the base image and Beam's SDK image: Beam needs the same minor
# version on the launcher and the workers (`pipeline.submit preprocess` checks the image's tag).
ARG PYTHON_VERSION=3.13
ARG BEAM_VERSION=2.77.0

# Dataflow starts SDK workers through Beam's boot launcher; take it from the matching SDK image.
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam

FROM python:${PYTHON_VERSION}-slim-bookworm
ARG PYTHON_VERSION
LABEL org.opencontainers.image.title="gan-pipeline" \
      io.github.gan-pipeline.python-version="${PYTHON_VERSION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app

# Dependencies before code: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
# The lock is the whole tree: installed as listed (--no-deps), every file's hash checked, then
# pip check confirms it is consistent. The same command as the Makefile's.
RUN pip install --require-hashes --no-deps -r requirements.lock && pip check

COPY --from=beam /opt/apache/beam /opt/apache/beam

# The project itself: small, last, changes most often.
COPY setup.py pyproject.toml README.md ./
COPY common/ common/
COPY preprocessing/ preprocessing/
COPY trainer/ trainer/
COPY pipeline/ pipeline/
COPY data/ data/
# The build's test step runs the suite here, as the image's user: it reads these files too.
COPY tests/ tests/
COPY Dockerfile .dockerignore cloudbuild.yaml ./
COPY docker/ docker/
COPY docker/entrypoint.sh /usr/local/bin/gan-entrypoint
# The lock's setuptools builds it (no isolated build env fetching an unpinned one).
RUN pip install --no-deps --no-build-isolation . \
    && chmod 0755 /usr/local/bin/gan-entrypoint \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin gan \
    && chown -R gan:gan /app

USER gan
# The trainer by default; Beam's harness when Dataflow starts the container (see the script).
ENTRYPOINT ["/usr/local/bin/gan-entrypoint"]
