#!/usr/bin/env python3
"""Build the ready-to-send CDS Hooks requests in fhir_fixtures/requests/ from the patient bundles.

    python fhir_fixtures/build_requests.py              # rewrite fhir_fixtures/requests/
    python fhir_fixtures/build_requests.py --out DIR    # write elsewhere (the tests compare)

For every patient bundle in patients/ this writes a patient-view request, and for the scenarios
below that declare draft orders an order-select request (the first draft selected) and an
order-sign request (all drafts).  Every prefetch key of the services is filled the way a FHIR
server would answer the service's template: `patient` is the Patient, the others are searchset
Bundles of the patient's resources of that type (total 0 when there are none).

sandbox-renal's order-select request is the call captured from the CDS Hooks sandbox
(captured/sandbox-order-select-valganciclovir.json) with this record's prefetch added: its context,
draft (a Bundle without `type`, a tablet-count dose) and extra prefetch keys ("meds", "user") stay
as the sandbox sent them.

Stdlib only and deterministic: hookInstance ids are UUID5s of the file name, so re-running gives
byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent
PATIENTS = FIXTURES / "patients"
REQUESTS = FIXTURES / "requests"
CAPTURED_SANDBOX = FIXTURES / "captured" / "sandbox-order-select-valganciclovir.json"

FHIR_SERVER = "http://localhost:8080/fhir"
USER_ID = "Practitioner/example"
ORDER_DATE = "2026-11-26"  # the fixtures' evaluation date (tests/conftest.py FIXTURE_NOW)
INSTANCE_NAMESPACE = uuid.UUID("0b6f8f5e-2c1d-4f0a-9a57-3e8c4d2b7a61")

# The services' prefetch keys (cds_service/services.py PREFETCH) and the resource type each searches.
PREFETCH_SEARCHES = {
    "observations": "Observation",
    "medications": "MedicationRequest",
    "conditions": "Condition",
    "allergies": "AllergyIntolerance",
}
# The medications template asks for these statuses only.
MEDICATION_STATUSES = ("active", "on-hold", "completed", "stopped")

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
ROUTES = {"iv": ("47625008", "Intravenous route"), "oral": ("26643006", "Oral route")}
DOSE_UNITS = {"mg": "mg", "mg/kg": "mg/kg", "{pill}": "tablet"}

Q12H = {"frequency": 1, "period": 12, "periodUnit": "h"}
TWICE_DAILY = {"frequency": 2, "period": 1, "periodUnit": "d"}
DAILY = {"frequency": 1, "period": 1, "periodUnit": "d"}
WEEKLY = {"frequency": 1, "period": 1, "periodUnit": "wk"}


def draft(patient_id, n, *, text, coding, dose, unit, route, sig, repeat=None, timing_code=None, end=None,
          supply_days=None):
    """A draft MedicationRequest (status draft, intent order) as an R4 EHR sends it in draftOrders."""
    timing = {"repeat": {"boundsPeriod": {"start": ORDER_DATE, **({"end": end} if end else {})}, **(repeat or {})}}
    if timing_code:
        timing["code"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                                      "code": timing_code, "display": timing_code}]}
    order = {
        "resourceType": "MedicationRequest",
        "id": f"{patient_id}-draft-{n}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [coding], "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": ORDER_DATE,
        "dosageInstruction": [{
            "text": sig,
            "timing": timing,
            "route": {"coding": [{"system": SNOMED, "code": ROUTES[route][0], "display": ROUTES[route][1]}]},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": DOSE_UNITS[unit], "system": UCUM, "code": unit}}],
        }],
    }
    if supply_days:
        order["dispenseRequest"] = {"expectedSupplyDuration": {"value": supply_days, "unit": "days", "system": UCUM,
                                                               "code": "d"}}
    return order


def as_dstu2(order):
    """The same draft as a DSTU2 client sends it: MedicationOrder, dateWritten, doseQuantity on the dosage."""
    dosage = order["dosageInstruction"][0]
    return {
        "resourceType": "MedicationOrder",
        "id": order["id"],
        "dateWritten": order["authoredOn"],
        "status": "draft",
        "patient": order["subject"],
        "medicationCodeableConcept": order["medicationCodeableConcept"],
        "dosageInstruction": [{
            "text": dosage["text"],
            "timing": dosage["timing"],
            "route": dosage["route"],
            "doseQuantity": dosage["doseAndRate"][0]["doseQuantity"],
        }],
    }


def rxnorm(code, display):
    return {"system": RXNORM, "code": code, "display": display}


def atc(code, display):
    return {"system": ATC, "code": code, "display": display}


def named(display):
    """A coding with a name only: for drugs whose codes the clinical reference has not verified."""
    return {"display": display}


VALGANCICLOVIR_450 = rxnorm("313566", "valganciclovir 450 MG Oral Tablet")

# Draft orders per patient (slug -> patient id -> drafts).  The first draft is the order-select selection.
DRAFTS = {
    "kidney-colitis": lambda pid: [
        draft(pid, 1, text="ganciclovir 500 MG Injection", coding=atc("J05AB06", "ganciclovir"), dose=350,
              unit="mg", route="iv", repeat=Q12H, sig="350 mg (5 mg/kg) IV every 12 hours over 1 hour"),
    ],
    "liver-renal": lambda pid: [
        draft(pid, 1, text="valganciclovir 450 MG Oral Tablet", coding=VALGANCICLOVIR_450, dose=900, unit="mg",
              route="oral", repeat=TWICE_DAILY, sig="900 mg by mouth twice daily with food"),
    ],
    # Letermovir drafted for a patient who already meets the pre-emptive threshold: prophylaxis is not treatment.
    "hsct-preemptive": lambda pid: [
        draft(pid, 1, text="Prevymis (letermovir) 480 MG Oral Tablet", coding=named("letermovir 480 MG Oral Tablet"),
              dose=480, unit="mg", route="oral", repeat=DAILY, sig="480 mg by mouth once daily"),
    ],
    "hsct-pneumonitis": lambda pid: [
        draft(pid, 1, text="ganciclovir 500 MG Injection", coding=named("ganciclovir 500 MG Injection"), dose=5,
              unit="mg/kg", route="iv", repeat=Q12H, sig="5 mg/kg IV every 12 hours over 1 hour"),
    ],
    "hiv-retinitis": lambda pid: [
        draft(pid, 1, text="valganciclovir 450 MG Oral Tablet", coding=VALGANCICLOVIR_450, dose=2, unit="{pill}",
              route="oral", repeat=TWICE_DAILY, end="2026-12-17", supply_days=21,
              sig="2 tablets (900 mg) by mouth twice daily with food for 21 days (induction)"),
    ],
    "refractory-valganciclovir": lambda pid: [
        draft(pid, 1, text="Livtencity (maribavir) 200 MG Oral Tablet", coding=named("maribavir 200 MG Oral Tablet"),
              dose=400, unit="mg", route="oral", repeat=TWICE_DAILY, sig="400 mg by mouth twice daily"),
    ],
    "foscarnet-low-mg": lambda pid: [
        draft(pid, 1, text="Foscavir (foscarnet sodium) 24 MG/ML Injection",
              coding=named("foscarnet sodium 24 MG/ML Injection"), dose=6300, unit="mg", route="iv", repeat=Q12H,
              sig="6300 mg (90 mg/kg) IV every 12 hours over 2 hours, with 1 L normal saline"),
    ],
    "cidofovir-creatinine": lambda pid: [
        draft(pid, 1, text="cidofovir 75 MG/ML Injection", coding=atc("J05AB12", "cidofovir"), dose=5,
              unit="mg/kg", route="iv", repeat=WEEKLY,
              sig="5 mg/kg IV once weekly for 2 weeks, with 1 L normal saline before each infusion"),
        draft(pid, 2, text="probenecid 500 MG Oral Tablet", coding=rxnorm("8698", "probenecid"), dose=2000,
              unit="mg", route="oral", repeat=WEEKLY,
              sig="2 g by mouth 3 hours before each cidofovir infusion, then 1 g at 2 and 8 hours after"),
    ],
    # Would be 450 mg twice daily at the 2026-10-15 creatinine, but creatinine and weight are stale.
    "stale-labs": lambda pid: [
        draft(pid, 1, text="valganciclovir 450 MG Oral Tablet", coding=VALGANCICLOVIR_450, dose=900, unit="mg",
              route="oral", repeat=TWICE_DAILY, sig="900 mg by mouth twice daily with food"),
    ],
    "no-cmv": lambda pid: [
        draft(pid, 1, text="amoxicillin 500 MG Oral Capsule", coding=named("amoxicillin 500 MG Oral Capsule"),
              dose=500, unit="mg", route="oral", timing_code="TID", end="2026-12-03",
              sig="500 mg by mouth three times daily for 7 days"),
    ],
}

# Extra requests: (file stem, patient slug, hook, transform of the drafts).
VARIANTS = [
    ("liver-renal-dstu2", "liver-renal", "order-sign", lambda drafts: [as_dstu2(d) for d in drafts]),
]


def load_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def bundle_resources(bundle):
    return [entry["resource"] for entry in bundle.get("entry", [])]


def searchset(resources, fhir_server):
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(resources)}
    if resources:
        bundle["entry"] = [
            {"fullUrl": f"{fhir_server}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ]
    return bundle


def prefetch_for(resources, fhir_server):
    """What the services' prefetch templates return for this patient (Observation newest first)."""
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    by_type = {kind: [r for r in resources if r["resourceType"] == kind] for kind in PREFETCH_SEARCHES.values()}
    by_type["Observation"].sort(key=lambda r: (r.get("effectiveDateTime", ""), r["id"]), reverse=True)
    by_type["MedicationRequest"] = [r for r in by_type["MedicationRequest"] if r["status"] in MEDICATION_STATUSES]
    prefetch = {"patient": patient}
    for key, kind in PREFETCH_SEARCHES.items():
        prefetch[key] = searchset(by_type[kind], fhir_server)
    return prefetch


def hook_request(stem, hook, patient_id, prefetch, drafts=None, fhir_server=FHIR_SERVER, hook_instance=None):
    context = {"userId": USER_ID, "patientId": patient_id}
    if hook != "patient-view":
        if hook == "order-select":
            context["selections"] = [f"{drafts[0]['resourceType']}/{drafts[0]['id']}"]
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts]}
    return {
        "hookInstance": hook_instance or str(uuid.uuid5(INSTANCE_NAMESPACE, f"{stem}.{hook}")),
        "hook": hook,
        "fhirServer": fhir_server,
        "context": context,
        "prefetch": prefetch,
    }


def sandbox_requests(resources):
    """sandbox-renal: the captured sandbox call, with this record's prefetch added to its own keys."""
    captured = load_json(CAPTURED_SANDBOX)
    prefetch = dict(captured["prefetch"])
    for key, value in prefetch_for(resources, captured["fhirServer"]).items():
        prefetch.setdefault(key, value)
    select = dict(captured, prefetch=prefetch)
    sign = {
        "hookInstance": str(uuid.uuid5(INSTANCE_NAMESPACE, "sandbox-renal.order-sign")),
        "hook": "order-sign",
        "fhirServer": captured["fhirServer"],
        "context": {k: v for k, v in captured["context"].items() if k != "selections"},
        "prefetch": prefetch,
    }
    return {"sandbox-renal.order-select": select, "sandbox-renal.order-sign": sign}


def build():
    """All requests: file stem -> request JSON."""
    requests = {}
    for path in sorted(PATIENTS.glob("*.json")):
        slug = path.stem
        resources = bundle_resources(load_json(path))
        patient_id = resources[0]["id"]
        prefetch = prefetch_for(resources, FHIR_SERVER)
        requests[f"{slug}.patient-view"] = hook_request(slug, "patient-view", patient_id, prefetch)
        if slug == "sandbox-renal":
            requests.update(sandbox_requests(resources))
        elif slug in DRAFTS:
            drafts = DRAFTS[slug](patient_id)
            for hook in ("order-select", "order-sign"):
                requests[f"{slug}.{hook}"] = hook_request(slug, hook, patient_id, prefetch, drafts)
        for stem, base, hook, transform in VARIANTS:
            if base == slug:
                drafts = transform(DRAFTS[slug](patient_id))
                requests[f"{stem}.{hook}"] = hook_request(stem, hook, patient_id, prefetch, drafts)
    return dict(sorted(requests.items()))


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, body in build().items():
        path = out_dir / f"{stem}.json"
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    for stale in set(out_dir.glob("*.json")) - set(written):
        stale.unlink()
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REQUESTS, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    written = write(args.out)
    print(f"wrote {len(written)} requests to {args.out}")


if __name__ == "__main__":
    main()
