# syntax=docker/dockerfile:1
# Clientshift image: `clientshift run` (the stream worker) by default; the same image runs the
# HubSpot webhook ingress (`clientshift ingress hubspot`) and `clientshift rules check`.
#
#   docker build -t clientshift:dev .
#   docker run --rm -e CLIENTSHIFT_BROKER=kafka://broker:9092 -p 6066:6066 clientshift:dev
#
# Two stages on the same pinned Python base: the builder installs the project and its
# dependencies into a virtualenv (with a C compiler for any dependency without a wheel on the
# target platform); the runtime stage copies only that virtualenv: no compiler, no pip cache, no
# sources. Runs as UID/GID 10001 with nothing to write outside /var/lib/clientshift and /tmp, so
# it works with a read-only root filesystem (the Helm chart mounts emptyDirs there).

# Both stages use the same base (the virtualenv's python links to /usr/local/bin/python3.11);
# bump both FROM lines together (Dependabot/Renovate see them).
FROM python:3.11.14-slim-bookworm AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Build tools for the builder stage only (never in the runtime image). Not version-pinned on
# purpose: Debian stable ships security fixes under new version numbers and drops the old ones,
# so a pin breaks the build within weeks; the pinned base image fixes the release (bookworm).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/clientshift
ENV PATH=/opt/clientshift/bin:$PATH

WORKDIR /src
# The build context is allow-listed by .dockerignore: pyproject.toml, README.md, LICENSE and the
# packages (workers, connectors, schemas).
COPY . .
RUN pip install --no-cache-dir . \
 && pip check \
 && clientshift --help > /dev/null


FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="clientshift" \
      org.opencontainers.image.description="Keeps a CRM's customer-vs-client picture true, automatically, from a stream of CRM events." \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/clientshift/bin:$PATH \
    CLIENTSHIFT_DATA_DIR=/var/lib/clientshift \
    CLIENTSHIFT_WEB_PORT=6066 \
    CLIENTSHIFT_INGRESS_PORT=8080

RUN groupadd --system --gid 10001 clientshift \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/clientshift --no-create-home \
      --shell /usr/sbin/nologin clientshift \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/clientshift

COPY --from=builder /opt/clientshift /opt/clientshift

USER 10001
WORKDIR /var/lib/clientshift

# 6066: the worker's /healthz, /readyz, /metrics; 8080: the webhook ingress.
EXPOSE 6066 8080

# The worker's liveness endpoint, with the image's own Python (slim has no curl). Kubernetes
# ignores HEALTHCHECK and uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=4).status == 200 else 1)"]

# SIGTERM (docker stop, Kubernetes) goes straight to the app, which shuts down gracefully.
STOPSIGNAL SIGTERM
ENTRYPOINT ["clientshift"]
CMD ["run"]
