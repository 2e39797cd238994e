"""Shared helpers for the cards tests: hand-built findings (no dependency on the clinical rules),
the sandbox's captured drafts, and the recursive checks every card must pass."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

from fhir.resources.R4B import get_fhir_model_class

from cds_service.clinical.findings import Citation, Finding
from cds_service.clinical.sources import cite

SHARED = Path(__file__).resolve().parents[4] / "shared"
PATIENT_ID = "probe-pt-1"


def sandbox_draft(example: str = "sandbox-order-select-valganciclovir.json") -> dict:
    """The MedicationRequest draft the CDS Hooks sandbox sent (captured)."""
    with open(SHARED / "examples" / example, encoding="utf-8") as fh:
        body = json.load(fh)
    return copy.deepcopy(body["context"]["draftOrders"]["entry"][0]["resource"])


def finding(**overrides: Any) -> Finding:
    fields: dict[str, Any] = {
        "topic": "renal-dose-adjustment",
        "indicator": "warning",
        "summary": "Valganciclovir 900 mg every 12 h is above the CrCl 40-59 mL/min band (450 mg every 12 h)",
        "detail": "CrCl 45 mL/min (Cockcroft-Gault: creatinine 1.6 mg/dL on 2026-11-20, weight 70 kg).",
        "sources": cite("valganciclovir-label", "kotton-2025"),
    }
    fields.update(overrides)
    return Finding(**fields)


def walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def empty_values(value: Any) -> list[str]:
    """Paths of null, "", [] or {} anywhere in value."""
    return [
        path
        for path, item in walk(value)
        if item is None or (isinstance(item, (str, list, dict)) and not item)
    ]


def actions(cards: list[dict]) -> list[dict]:
    return [a for card in cards for s in card.get("suggestions", ()) for a in s["actions"]]


def validate_r4b(resource: dict) -> None:
    """Raise unless `resource` is a valid FHIR R4(B) resource of its type."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def citation(key: str) -> Citation:
    return cite(key)[0]
