# The CDS Hooks service: gunicorn (gthread workers) via `cds-service serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY fhir_fixtures ./fhir_fixtures
RUN pip install ".[postgres]"

# Not root; the SQLite default (when CDS_DATABASE_URL is unset) lives in /app/data.
RUN useradd --system --home-dir /app cds && mkdir -p /app/data && chown cds /app/data
USER cds

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["cds-service", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "4", "--threads", "4"]
