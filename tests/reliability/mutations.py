"""Ways to spoil a fixture request, shared by the bad-data tests, the fuzzers and the load script."""

from __future__ import annotations

from typing import Any, Callable, Iterator

WEIGHT_CODES = {"29463-7", "3141-9"}
CREATININE_CODES = {"2160-0", "14682-9", "38483-4"}
ANTI_CMV_DRUGS = ("ganciclovir", "valganciclovir", "foscarnet", "cidofovir", "letermovir", "maribavir")


def observations(body: dict) -> list[dict]:
    bundle = (body.get("prefetch") or {}).get("observations") or {}
    return [e["resource"] for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def observations_coded(body: dict, codes: set[str]) -> list[dict]:
    found = []
    for obs in observations(body):
        if any(c.get("code") in codes for c in (obs.get("code") or {}).get("coding") or []):
            found.append(obs)
    assert found, f"the fixture has no observation coded {sorted(codes)}"
    return found


def set_quantity(codes: set[str], **changes) -> Callable[[dict], None]:
    """A mutation: every observation with one of `codes` gets its valueQuantity fields changed
    (a value of ... deletes the field)."""

    def mutate(body: dict) -> None:
        for obs in observations_coded(body, codes):
            quantity = obs.setdefault("valueQuantity", {})
            for key, value in changes.items():
                if value is ...:
                    quantity.pop(key, None)
                else:
                    quantity[key] = value

    return mutate


def replace_value(codes: set[str], **value) -> Callable[[dict], None]:
    """A mutation: the observations' valueQuantity is replaced by another value[x]."""

    def mutate(body: dict) -> None:
        for obs in observations_coded(body, codes):
            obs.pop("valueQuantity", None)
            obs.update(value)

    return mutate


def drafts(body: dict) -> list[dict]:
    entries = body["context"]["draftOrders"].get("entry") or []
    return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def dose_quantities(body: dict) -> list[dict]:
    quantities = []
    for draft in drafts(body):
        for dosage in draft.get("dosageInstruction") or []:
            for rate in dosage.get("doseAndRate") or []:
                if isinstance(rate.get("doseQuantity"), dict):
                    quantities.append(rate["doseQuantity"])
            if isinstance(dosage.get("doseQuantity"), dict):
                quantities.append(dosage["doseQuantity"])
    assert quantities, "the fixture's drafts carry no dose quantity"
    return quantities


def strings(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every string in a JSON document (keys and ids excluded)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key not in ("resourceType", "id", "reference", "hook", "hookInstance"):
                yield value, key
            else:
                yield from strings(item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield value, i
            else:
                yield from strings(item)


def nested(depth: int, leaf: Any = 1) -> Any:
    """[[[...leaf...]]] `depth` arrays deep, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def active_valganciclovir(extension) -> dict:
    """An active valganciclovir order on record: with a ganciclovir draft, the service proposes to
    discontinue it, so this resource is echoed back in a suggestion."""
    return {
        "resourceType": "MedicationRequest", "id": "active-vgc", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/cmv-kidney-colitis"}, "authoredOn": "2026-11-20",
        "medicationCodeableConcept": {"text": "valganciclovir 450 MG Oral Tablet"},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": 2, "code": "{pill}",
                                                                 "system": "http://unitsofmeasure.org"}}]}],
        "extension": [{"url": "urn:junk", "extension": extension}],
    }


# ------------------------------------------------------------------------- what the answer says


def suggested_resources(cards: list[dict]) -> list[dict]:
    return [
        action["resource"]
        for card in cards
        for suggestion in card.get("suggestions") or []
        for action in suggestion.get("actions") or []
        if isinstance(action.get("resource"), dict)
    ]


def suggested_doses(cards: list[dict]) -> list[dict]:
    """Every dose quantity a suggestion proposes (MedicationRequest or DSTU2 MedicationOrder)."""
    doses = []
    for resource in suggested_resources(cards):
        if resource.get("resourceType") not in ("MedicationRequest", "MedicationOrder"):
            continue
        for dosage in resource.get("dosageInstruction") or []:
            if isinstance(dosage.get("doseQuantity"), dict):
                doses.append(dosage["doseQuantity"])
            for rate in dosage.get("doseAndRate") or []:
                if isinstance(rate.get("doseQuantity"), dict):
                    doses.append(rate["doseQuantity"])
    return doses
