"""ingest's OpenAPI document is good enough for a generated client: the document served by a
real ingest validates, a third-party generator (openapi-python-client) makes a Python client
from it without warnings, and that client's typed models carry a real exchange with ingest on
the real broker: 202 with the record on the topic, a typed 422 naming the field, a typed 401."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.integration.services import AUTH, events_with_ids
from tests.support import Service, missing_opened

PACKAGE = "carealert_ingest_client"
API_KEY = AUTH["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def spec(ingest: Service) -> dict[str, Any]:
    r = httpx.get(f"{ingest.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    served: dict[str, Any] = r.json()
    return served


@pytest.fixture(scope="module")
def client_package(
    spec: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The generated package, imported. No network: the document is a local file and the
    generator writes only the package (`--meta none`), with no formatter run after it."""
    work = tmp_path_factory.mktemp("generated")
    document = work / "openapi.json"
    document.write_text(json.dumps(spec))
    config = work / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(work / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output and "missing" not in output, output
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def generated(name: str) -> Any:
    """A module of the generated package (after client_package imported it)."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_served_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)  # raises naming the first problem
    assert spec["servers"] == [{"url": "/"}]
    assert spec["paths"]["/healthz"]["get"].get("security") is None


def test_generated_client_posts_an_event(
    client_package: ModuleType, ingest: Service, bootstrap: str
) -> None:
    post_event = generated("api.default.post_event")
    models = generated("models")
    client = client_package.AuthenticatedClient(base_url=ingest.url, token=API_KEY)
    event = models.MissingOpenedEvent.from_dict(missing_opened(child_id="C-generated"))
    response = post_event.sync_detailed(client=client, body=event)
    assert response.status_code == 202, response.content
    assert isinstance(response.parsed, models.EventAccepted)
    assert response.parsed.event_id == event.event_id
    assert response.parsed.status == "accepted"
    [record] = events_with_ids(bootstrap, {event.event_id})
    assert record.key == b"demo-agency:C-generated"


def test_generated_client_posts_a_batch(client_package: ModuleType, ingest: Service) -> None:
    post_event_batch = generated("api.default.post_event_batch")
    models = generated("models")
    client = client_package.AuthenticatedClient(base_url=ingest.url, token=API_KEY)
    events = [models.MissingOpenedEvent.from_dict(missing_opened()) for _ in range(3)]
    response = post_event_batch.sync_detailed(client=client, body=models.EventBatch(events=events))
    assert response.status_code == 202, response.content
    assert isinstance(response.parsed, models.BatchAccepted)
    assert response.parsed.accepted == 3
    assert [r.event_id for r in response.parsed.results] == [e.event_id for e in events]


def test_generated_client_reads_a_typed_422(client_package: ModuleType, ingest: Service) -> None:
    post_event = generated("api.default.post_event")
    post_event_batch = generated("api.default.post_event_batch")
    models = generated("models")
    client = client_package.AuthenticatedClient(base_url=ingest.url, token=API_KEY)
    event = models.MissingOpenedEvent.from_dict(missing_opened())
    event.child_id = "C" * 129
    response = post_event.sync_detailed(client=client, body=event)
    assert response.status_code == 422
    problem = response.parsed
    assert isinstance(problem, models.Problem)
    assert problem.detail == "the event is not valid"
    assert isinstance(problem.errors[0], models.ErrorItem)
    assert (problem.errors[0].field, problem.errors[0].type_) == ("child_id", "string_too_long")
    assert "128" in problem.errors[0].problem
    assert "CCCC" not in response.content.decode()

    good = models.MissingOpenedEvent.from_dict(missing_opened())
    batch = post_event_batch.sync_detailed(
        client=client, body=models.EventBatch(events=[good, event])
    )
    assert batch.status_code == 422
    assert isinstance(batch.parsed, models.Problem)
    assert [(e.index, e.field) for e in batch.parsed.errors] == [(1, "child_id")]


def test_generated_client_reads_a_typed_401(client_package: ModuleType, ingest: Service) -> None:
    post_event = generated("api.default.post_event")
    models = generated("models")
    anonymous = client_package.Client(base_url=ingest.url)
    event = models.MissingOpenedEvent.from_dict(missing_opened())
    response = post_event.sync_detailed(client=anonymous, body=event)
    assert response.status_code == 401
    assert isinstance(response.parsed, models.Problem)
    assert response.parsed.detail == "missing API key: send 'Authorization: Bearer <api key>'"
    assert response.headers["www-authenticate"] == "Bearer"

    wrong = client_package.AuthenticatedClient(base_url=ingest.url, token="not-a-key")
    response = post_event.sync_detailed(client=wrong, body=event)
    assert response.status_code == 401
    assert response.parsed.detail == "unknown API key"


def test_generated_client_reads_health_without_a_key(
    client_package: ModuleType, ingest: Service
) -> None:
    anonymous = client_package.Client(base_url=ingest.url)
    assert generated("api.default.get_healthz").sync(client=anonymous) == "ok"
    assert generated("api.default.get_readyz").sync(client=anonymous) == "ready"
