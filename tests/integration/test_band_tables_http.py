"""Every row of every renal band table, through the HTTP service.

For each drug, phase (foscarnet: regimen) and band, a patient whose Cockcroft-Gault clearance lies in
the middle of the band is sent an order-sign call with the drug at its standard (unadjusted) dose.
The card must propose exactly the band's dose and interval (the dose renal_dose() computes from the
table), or stay silent when the order already is a band dose, or say the label's "do not give".
"""

from __future__ import annotations

from datetime import datetime

import pytest
from conftest import FIXTURE_NOW

from cds_service.clinical import dose_tables as T
from cds_service.clinical.renal_dosing import RenalDose, renal_dose
from cds_service.facts import PatientRecord, build_facts
from cds_service.policy import Policy

AGE, WEIGHT_KG = 60, 70.0  # male: CrCl = (140 - 60) x 70 / (72 x SCr)
NOW = datetime.fromisoformat(FIXTURE_NOW)
HOURS = {"h": 1, "d": 24, "wk": 168}

# The standard order for each drug and phase/regimen: (mg, every hours), 70 kg.
STANDARD_ORDERS = {
    ("ganciclovir", "induction"): (350, 12),
    ("ganciclovir", "maintenance"): (350, 24),
    ("valganciclovir", "induction"): (900, 12),
    ("valganciclovir", "maintenance"): (900, 24),
    ("foscarnet", "60q8h"): (4200, 8),
    ("foscarnet", "90q12h"): (6300, 12),
    ("foscarnet", "90/day"): (6300, 24),
    ("foscarnet", "120/day"): (8400, 24),
}
TABLES = {"ganciclovir": T.GANCICLOVIR, "valganciclovir": T.VALGANCICLOVIR, "foscarnet": T.FOSCARNET}


def band_middles(table) -> list[tuple[str, float]]:
    """(band label, a clearance in the middle of the band) for every band of the table."""
    per_kg = table.unit == "mL/min/kg"
    middles, upper = [], None
    for band in table.bands:
        if band.lower is None:
            value = upper / 2
        elif upper is None:
            value = band.lower + (0.3 if per_kg else 20)
        else:
            value = (band.lower + upper) / 2
        middles.append((band.label, value))
        upper = band.lower
    return middles


CASES = [
    pytest.param(drug, key, label, clearance, id=f"{drug}-{key}-{label}")
    for (drug, key) in STANDARD_ORDERS
    for label, clearance in band_middles(TABLES[drug])
]


def creatinine_for(drug: str, clearance: float) -> float:
    if TABLES[drug].unit == "mL/min/kg":
        return round((140 - AGE) / (72 * clearance), 3)
    return round((140 - AGE) * WEIGHT_KG / (72 * clearance), 3)


def request(drug: str, mg: float, every_hours: float, creatinine: float) -> dict:
    patient = {"resourceType": "Patient", "id": "band-pt", "gender": "male", "birthDate": "1966-06-01"}

    def observation(oid, code, value, unit):
        return {
            "resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/band-pt"}, "effectiveDateTime": "2026-11-25T08:00:00Z",
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        }

    observations = [
        observation("band-creat", "2160-0", creatinine, "mg/dL"),
        observation("band-weight", "29463-7", WEIGHT_KG, "kg"),
        observation("band-anc", "751-8", 4.0, "10*3/uL"),
        observation("band-plt", "777-3", 200, "10*3/uL"),
        observation("band-hb", "718-7", 13.0, "g/dL"),
    ]
    draft = {
        "resourceType": "MedicationRequest", "id": "band-draft", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/band-pt"},
        "medicationCodeableConcept": {"text": drug},
        "dosageInstruction": [{
            "route": {"coding": [{"system": "http://snomed.info/sct",
                                  "code": "26643006" if drug == "valganciclovir" else "47625008"}]},
            "timing": {"repeat": {"frequency": 1, "period": every_hours, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org",
                                              "code": "mg"}}],
        }],
    }
    searchset = {"resourceType": "Bundle", "type": "searchset",
                 "entry": [{"resource": o} for o in observations]}
    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    return {
        "hook": "order-sign",
        "hookInstance": "0b7c1b0e-2f4a-4c55-9a3e-5d1d4b7e6a01",
        "context": {"userId": "Practitioner/1", "patientId": "band-pt",
                    "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}},
        "prefetch": {"patient": patient, "observations": searchset, "medications": empty, "conditions": empty,
                     "allergies": empty},
    }


def band_doses(drug: str, facts) -> list[RenalDose]:
    """Every band dose the label allows this patient (all phases, all foscarnet regimens)."""
    if drug == "foscarnet":
        keys = [(T.FOSCARNET_REGIMEN_PHASE[r], r) for r in T.FOSCARNET_REGIMEN_PHASE]
    else:
        keys = [("induction", None), ("maintenance", None)]
    doses = [renal_dose(drug, phase, facts, Policy(), regimen=r) for phase, r in keys]
    return [d for d in doses if isinstance(d, RenalDose) and d.dose_mg is not None]


def doses_per_week(timing_repeat: dict) -> float:
    return timing_repeat["frequency"] * 168 / (timing_repeat["period"] * HOURS[timing_repeat["periodUnit"]])


@pytest.mark.parametrize("drug,key,band_label,clearance", CASES)
def test_every_band_row_through_the_service(live_service, drug, key, band_label, clearance):
    mg, every = STANDARD_ORDERS[(drug, key)]
    body = request(drug, mg, every, creatinine_for(drug, clearance))
    facts = build_facts(PatientRecord.from_hook(body["context"], body["prefetch"]), Policy(), NOW)
    phase = T.FOSCARNET_REGIMEN_PHASE.get(key, key)
    expected = renal_dose(drug, phase, facts, Policy(), regimen=key if drug == "foscarnet" else None)
    assert isinstance(expected, RenalDose) and expected.band == band_label  # the patient is in the band

    response = live_service.call("cmv-order-sign", body)
    assert response.status_code == 200, response.text
    cards = {c["source"]["topic"]["code"]: c for c in response.json()["cards"]}

    if expected.not_recommended:
        if drug == "foscarnet":  # label: not recommended below 0.4 mL/min/kg
            assert cards["nephrotoxicity"]["indicator"] == "critical"
            assert "renal-dose-adjustment" not in cards
        else:  # valganciclovir tablets below CrCl 10: IV ganciclovir per its own table
            iv = renal_dose("ganciclovir", phase, facts, Policy())
            (action,) = [a for s in cards["renal-dose-adjustment"]["suggestions"] for a in s["actions"]]
            dosage = action["resource"]["dosageInstruction"][0]
            assert "ganciclovir" in action["resource"]["medicationCodeableConcept"]["text"].lower()
            assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == iv.dose_mg
        return

    ordered_per_week = 168 / every
    if any(abs(d.dose_mg - mg) <= 0.1 * d.dose_mg and abs(d.doses_per_week - ordered_per_week) < 0.05
           for d in band_doses(drug, facts)):
        assert "renal-dose-adjustment" not in cards  # the order already is a band dose
        return

    card = cards["renal-dose-adjustment"]
    assert band_label in card["detail"]
    (action,) = [a for s in card["suggestions"] for a in s["actions"]]
    assert action["type"] == "update" and action["resource"]["id"] == "band-draft"
    dosage = action["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == expected.dose_mg
    assert doses_per_week(dosage["timing"]["repeat"]) == pytest.approx(expected.doses_per_week)
