# syntax=docker/dockerfile:1
# One image for the trainer (the Vertex AI CustomJob container) and the Beam workers (Dataflow's
# --sdk_container_image). Dependencies come from the same requirements.lock that CI installs.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BEAM_SDK_IMAGE=apache/beam_python3.11_sdk:2.77.0

# Dataflow starts SDK workers through Beam's boot launcher; take it from the matching SDK image.
FROM ${BEAM_SDK_IMAGE} AS beam

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app

# Dependencies before code: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

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
RUN pip install --no-deps . \
    && chmod 0755 /usr/local/bin/gan-entrypoint \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin gan \
    && chown -R gan:gan /app

USER gan
# The trainer by default; Beam's harness when Dataflow starts the container (see the script).
ENTRYPOINT ["/usr/local/bin/gan-entrypoint"]
