# One image for every carealert service: `carealert ingest|rules|notify|sinks`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY services ./services
RUN pip install --no-cache-dir -c constraints.txt '.[rocksdb]'
COPY rules ./rules
COPY deploy/local/api-keys.yaml ./deploy/local/api-keys.yaml
RUN useradd --system --uid 10001 carealert && mkdir -p /data && chown carealert /data
USER carealert
ENV CAREALERT_POLICY_DIR=/app/rules CAREALERT_RULES_DATA_DIR=/data/rules
ENTRYPOINT ["carealert"]
