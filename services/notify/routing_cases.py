"""The `routing_cases:` of the policy tests: labels → the receivers they must reach."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from services.common import yamlio
from services.common.models import Strict
from services.notify.routing import LABELS, Routing


class RoutingCase(Strict):
    name: str
    labels: dict[str, str]
    receivers: list[str]


def run_routing_cases(routing: Routing, directory: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """Run the `routing_cases:` of every `directory/*.yaml`: each case's labels must reach
    exactly the listed receivers, in order. Returns (file, case name, failures)."""
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for path in sorted(directory.glob("*.yaml")):
        raw = yamlio.load(path.read_text())
        if not isinstance(raw, dict) or "routing_cases" not in raw:
            continue
        for i, item in enumerate(raw["routing_cases"] or []):
            try:
                case = RoutingCase.model_validate(item)
            except ValidationError as exc:
                out.append(
                    (path.name, f"routing_cases.{i}", (f"invalid case: {exc.errors()[0]['msg']}",))
                )
                continue
            unknown = sorted(set(case.labels) - set(LABELS))
            if unknown:
                out.append((path.name, case.name, (f"unknown labels {unknown}",)))
                continue
            labels = dict.fromkeys(LABELS, "") | {"status": "firing"} | case.labels
            got = list(dict.fromkeys(node.receiver for node in routing.match(labels)))
            failures = (
                ()
                if got == case.receivers
                else (f"expected receivers {case.receivers}, got {got}",)
            )
            out.append((path.name, case.name, failures))
    return out
