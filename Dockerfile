# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY resolvers resolvers
COPY rest rest
COPY data data
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
COPY gunicorn.conf.py /app/gunicorn.conf.py
WORKDIR /app
RUN useradd --system --uid 10001 gateway
USER gateway
ENV PATH=/opt/venv/bin:$PATH
EXPOSE 8000
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
