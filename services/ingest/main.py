"""Start the ingest service: wait for Kafka, create topics, serve HTTP."""

from __future__ import annotations

import logging

import uvicorn
from prometheus_client import CollectorRegistry

from services.common import logs
from services.ingest.app import create_app
from services.ingest.keys import ApiKeys
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from services.ingest.sink import KafkaEventSink

log = logging.getLogger(__name__)


def run(settings: IngestSettings) -> None:
    logs.configure("ingest", settings.log_level)
    keys = ApiKeys.load(settings.api_keys_file, demo=settings.env == "demo")
    kafka = settings.connected_kafka("carealert-ingest")
    sink = KafkaEventSink(kafka, timeout_s=settings.publish_timeout_s)
    app = create_app(settings, keys, sink, IngestMetrics(CollectorRegistry()))
    log.info("ingest listening", extra={"port": settings.ingest_port})
    try:
        uvicorn.run(
            app,
            host=settings.ingest_host,
            port=settings.ingest_port,
            log_config=None,
            access_log=False,
            **settings.uvicorn_tls(),  # type: ignore[arg-type]  # str paths
        )
    finally:
        sink.close()
