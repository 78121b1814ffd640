# syntax=docker/dockerfile:1
# Build: dependencies in a layer of their own, from the lock and hash-checked (rebuilt only
# when requirements/runtime.txt changes), then the gateway itself, with the locked setuptools
# and nothing else.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY resolvers resolvers
COPY rest rest
COPY data data
RUN pip install --no-deps --no-build-isolation .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    WEB_CONCURRENCY=2 \
    DATA_DIR=/var/lib/gateway \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gateway-metrics
RUN useradd --system --uid 10001 --no-create-home gateway \
    && mkdir -p /var/lib/gateway /tmp/gateway-metrics \
    && chown gateway /var/lib/gateway /tmp/gateway-metrics
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
# RUN_MIGRATIONS=1 makes `gateway serve` apply migrations once before any worker starts.
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
