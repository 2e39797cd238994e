"""Synthetic kidney-transplant patients with growing histories, and the hook requests an EHR sends.

One patient per size: a 64-year-old man, kidney transplant in 2019, with years of laboratory panels
(creatinine, weight, CBC, electrolytes, CMV PCR), a medication history of refills and stopped orders,
resolved and active problems.  Today his creatinine is up (Cockcroft-Gault CrCl about 40 mL/min) and
CMV viraemia is rising, so the order-sign draft (valganciclovir 900 mg twice daily, sent the way the
CDS Hooks sandbox sends it: 2 x 450 mg tablets) needs a renal dose: the service has real work to do.

Every request carries its full prefetch (no FHIR server needed).  Observations use the LOINC codes the
service asks for (cds_service.facts.codes.OBSERVATION_LOINC_CODES); values are plausible and
internally consistent (eGFR and CrCl follow creatinine), dates spread over years, newest first as
`_sort=-date` returns them, or shuffled.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

# The evaluation time of the service under benchmark (CDS_EVALUATION_TIME), so the newest results
# are days old and the rules run as they would in clinic.  The same instant as tests' FIXTURE_NOW.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)

BIRTH_DATE = date(1962, 3, 14)
TRANSPLANT_DATE = date(2019, 5, 2)
HEIGHT_CM = 178.0
FHIR_BASE = "https://ehr.example.org/fhir"

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@dataclass(frozen=True)
class Size:
    """How long a history is: observations, plus medication orders and conditions that grow with it."""

    observations: int
    medications: int
    conditions: int

    @property
    def label(self) -> str:
        return f"{self.observations:,} obs"


def size_for(observations: int) -> Size:
    """Medication and condition histories grow with the observation count (a sicker, longer record)."""
    return Size(
        observations=observations,
        medications=max(8, round(8 * math.sqrt(observations / 10))),  # 100 obs: 25, 10,000: 253
        conditions=max(6, round(3 * math.sqrt(observations / 10))),  # 100 obs: 9, 10,000: 95
    )


def history_years(observations: int) -> float:
    """Years the history spans: about 1 year for 100 observations, 6 for 10,000."""
    return min(10.0, max(1.0, 2.5 * math.log10(observations) - 4))


# ---------------------------------------------------------------------------------------------
# The patient's course: what a measurement would be on a given day


def age_on(day: date) -> int:
    return day.year - BIRTH_DATE.year - ((day.month, day.day) < (BIRTH_DATE.month, BIRTH_DATE.day))


def creatinine(days_ago: float, rng: random.Random) -> float:
    """mg/dL: a stable graft around 1.3, rising over the last weeks to about 1.9."""
    return max(0.6, 1.3 + 0.6 * math.exp(-days_ago / 25) + rng.gauss(0, 0.08))


def weight(days_ago: float, rng: random.Random) -> float:
    """kg: 78 kg three years ago drifting to 72 kg now."""
    return 72 + min(days_ago, 1100) / 1100 * 6 + rng.gauss(0, 0.6)


def egfr_ckd_epi_2021(scr: float, age: int) -> float:
    """CKD-EPI 2021 (race-free), male: what the lab would report next to the creatinine."""
    k, a = 0.9, -0.302
    return 142 * min(scr / k, 1) ** a * max(scr / k, 1) ** -1.200 * 0.9938**age


def cmv_iu_per_ml(days_ago: float, rng: random.Random) -> float | None:
    """CMV DNA IU/mL, None when not detected: an episode in 2021, one in 2023, one rising now."""
    episodes = ((0, 28, 12_500, 900), (1150, 1200, 45_000, 600), (1900, 1960, 8_000, 400))
    for newest, oldest, peak, start in episodes:
        if newest <= days_ago <= oldest:
            # log-linear rise from `start` (oldest day) to `peak` (newest day), with assay noise
            share = (oldest - days_ago) / (oldest - newest)
            log10 = math.log10(start) + share * (math.log10(peak) - math.log10(start))
            return round(10 ** (log10 + rng.gauss(0, 0.08)))
    return None


@dataclass(frozen=True)
class Analyte:
    code: str
    display: str
    unit: str  # UCUM code, also sent as the unit's display
    panel: str  # drawn together at a visit: bmp, cbc, vitals, cmv, extra
    share: float  # chance the panel includes it at a visit
    value: Callable[[float, date, random.Random], float]  # (days ago, day, rng) -> value
    decimals: int
    reference: tuple[float, float] | None = None


def _normal(mean: float, sd: float, low: float = 0.0) -> Callable[[float, date, random.Random], float]:
    return lambda days_ago, day, rng: max(low, rng.gauss(mean, sd))


ANALYTES: tuple[Analyte, ...] = (
    # Renal panel and electrolytes
    Analyte("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "bmp", 1.0,
            lambda d, day, rng: creatinine(d, rng), 2, (0.7, 1.3)),
    Analyte("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "umol/L", "extra", 0.04,
            lambda d, day, rng: creatinine(d, rng) * 88.42, 0, (62, 115)),
    Analyte("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
            "Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", "bmp", 0.8,
            lambda d, day, rng: egfr_ckd_epi_2021(creatinine(d, rng), age_on(day)), 0, (60, 200)),
    Analyte("35591-7", "Creatinine renal clearance predicted by Cockcroft-Gault formula", "mL/min",
            "extra", 0.03,
            lambda d, day, rng: (140 - age_on(day)) * weight(d, rng) / (72 * creatinine(d, rng)), 0),
    Analyte("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "bmp", 0.95,
            _normal(4.4, 0.4, 2.8), 1, (3.5, 5.1)),
    Analyte("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", "bmp", 0.6,
            _normal(1.8, 0.2, 1.0), 1, (1.6, 2.6)),
    Analyte("2601-3", "Magnesium [Moles/volume] in Serum or Plasma", "mmol/L", "extra", 0.03,
            _normal(0.75, 0.08, 0.4), 2, (0.66, 1.07)),
    Analyte("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", "bmp", 0.9,
            _normal(9.2, 0.4, 7.0), 1, (8.6, 10.3)),
    Analyte("2000-8", "Calcium [Moles/volume] in Serum or Plasma", "mmol/L", "extra", 0.03,
            _normal(2.3, 0.1, 1.8), 2, (2.15, 2.55)),
    Analyte("1994-3", "Calcium.ionized [Moles/volume] in Blood", "mmol/L", "extra", 0.06,
            _normal(1.2, 0.05, 0.9), 2, (1.12, 1.32)),
    Analyte("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", "bmp", 0.5,
            _normal(3.4, 0.6, 1.5), 1, (2.5, 4.5)),
    Analyte("14879-1", "Phosphate [Moles/volume] in Serum or Plasma", "mmol/L", "extra", 0.03,
            _normal(1.1, 0.2, 0.5), 2, (0.81, 1.45)),
    Analyte("2888-6", "Protein [Mass/volume] in Urine", "mg/dL", "extra", 0.05,
            _normal(22, 12, 4), 0, (0, 14)),
    # Blood counts (10*3/uL as most US labs report)
    Analyte("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "cbc", 0.95,
            _normal(6.0, 1.5, 1.0), 1, (4.0, 11.0)),
    Analyte("26464-8", "Leukocytes [#/volume] in Blood", "10*3/uL", "extra", 0.04,
            _normal(6.0, 1.5, 1.0), 1, (4.0, 11.0)),
    Analyte("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "cbc", 1.0,
            _normal(11.8, 1.1, 6.5), 1, (13.5, 17.5)),
    Analyte("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "cbc", 1.0,
            _normal(190, 45, 20), 0, (150, 400)),
    Analyte("26515-7", "Platelets [#/volume] in Blood", "10*3/uL", "extra", 0.03,
            _normal(190, 45, 20), 0, (150, 400)),
    Analyte("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", "cbc", 0.9,
            _normal(3.6, 1.1, 0.3), 2, (1.8, 7.7)),
    # Vital signs
    Analyte("29463-7", "Body weight", "kg", "vitals", 0.7, lambda d, day, rng: weight(d, rng), 1),
    Analyte("8302-2", "Body height", "cm", "vitals", 0.05, _normal(HEIGHT_CM, 0.5, 150), 1),
)
ANALYTES_BY_CODE = {a.code: a for a in ANALYTES}

# CMV PCR codes and the scale each reports on; the value follows the patient's viral course.
CMV_PCR = {
    "72493-0": ("Cytomegalovirus DNA [#/volume] (viral load) in Serum or Plasma by NAA with probe "
                "detection", "[IU]/mL", 0.5),
    "100675-8": ("Cytomegalovirus DNA [#/volume] (viral load) in Blood by NAA with probe detection",
                 "[IU]/mL", 0.03),
    "33006-8": ("Cytomegalovirus DNA [#/volume] (viral load) in Specimen by NAA with probe detection",
                "{copies}/mL", 0.03),
    "29604-6": ("Cytomegalovirus DNA [#/volume] (viral load) in Blood by NAA with probe detection",
                "{copies}/mL", 0.02),
}
URINE_DIPSTICK = "5804-0"  # Protein [Presence] in Urine by Test strip: reported as text
KNOWN_CODES = frozenset(ANALYTES_BY_CODE) | frozenset(CMV_PCR) | {URINE_DIPSTICK}


def service_codes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(codes to generate, codes the service asks for that this generator cannot make).

    The service's prefetch filters observations by OBSERVATION_LOINC_CODES, so an EHR would send only
    those; until the facts layer declares them, every code known here is used."""
    try:
        from cds_service.facts.codes import OBSERVATION_LOINC_CODES
    except ImportError:
        return tuple(sorted(KNOWN_CODES)), ()
    wanted = set(OBSERVATION_LOINC_CODES)
    return tuple(sorted(wanted & KNOWN_CODES)), tuple(sorted(wanted - KNOWN_CODES))


# ---------------------------------------------------------------------------------------------
# Resources


def _reference(kind: str, id_: str) -> dict[str, str]:
    return {"reference": f"{kind}/{id_}"}


def _quantity(value: float, unit: str, decimals: int) -> dict[str, Any]:
    rounded = round(value, decimals) if decimals else int(round(value))
    return {"value": rounded, "unit": unit, "system": UCUM, "code": unit}


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def observation(
    id_: str, patient_id: str, code: str, display: str, moment: datetime, category: str, value: dict
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": _reference("Patient", patient_id),
        "effectiveDateTime": _instant(moment),
        "issued": _instant(moment + timedelta(hours=3)),
        **value,
    }


def _measured(analyte: Analyte, days_ago: float, day: date, rng: random.Random) -> dict[str, Any]:
    value = analyte.value(days_ago, day, rng)
    result: dict[str, Any] = {"valueQuantity": _quantity(value, analyte.unit, analyte.decimals)}
    if analyte.reference:
        low, high = analyte.reference
        flag = "L" if value < low else "H" if value > high else "N"
        result["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
        result["referenceRange"] = [{"low": _quantity(low, analyte.unit, 2), "high": _quantity(high, analyte.unit, 2)}]
    return result


def _cmv_result(unit: str, days_ago: float, rng: random.Random) -> dict[str, Any]:
    iu = cmv_iu_per_ml(days_ago, rng)
    if iu is not None:
        value = iu if unit == "[IU]/mL" else iu * 1.4  # a copies assay reads higher; not interconverted
        return {"valueQuantity": _quantity(value, unit, 0),
                "interpretation": [{"coding": [{"system": INTERPRETATION, "code": "A"}]}]}
    if rng.random() < 0.15:  # detected below the lower limit of quantification
        return {"valueQuantity": {"comparator": "<", **_quantity(137, unit, 0)}}
    return {"valueCodeableConcept": {
        "coding": [{"system": SNOMED, "code": "260415000", "display": "Not detected"}], "text": "Not detected"}}


def observations(patient_id: str, count: int, codes: tuple[str, ...], seed: int) -> list[dict[str, Any]]:
    """`count` observations, newest first: visits from yesterday back over history_years(count)."""
    rng = random.Random(seed)
    wanted = set(codes)
    panels = [a for a in ANALYTES if a.code in wanted]
    pcr = [(code, *CMV_PCR[code]) for code in CMV_PCR if code in wanted]
    per_visit = sum(a.share for a in panels) + sum(share for *_, share in pcr) + 0.08 * (URINE_DIPSTICK in wanted)
    if per_visit == 0:
        return []
    step_days = history_years(count) * 365 / (count / per_visit)

    result: list[dict[str, Any]] = []
    moment = NOW - timedelta(days=1, hours=4)
    first = True
    while len(result) < count:
        days_ago = (NOW - moment).total_seconds() / 86400
        day = moment.date()
        drawn: list[tuple[str, str, str, dict[str, Any]]] = []  # code, display, category, value
        for analyte in panels:
            # The newest visit has the full work-up the rules read (kidney, counts, weight, PCR).
            if first and analyte.panel != "extra" or rng.random() < analyte.share:
                category = "vital-signs" if analyte.panel == "vitals" else "laboratory"
                drawn.append((analyte.code, analyte.display, category, _measured(analyte, days_ago, day, rng)))
        for code, display, unit, share in pcr:
            if first and code == "72493-0" or rng.random() < share:
                drawn.append((code, display, "laboratory", _cmv_result(unit, days_ago, rng)))
        if URINE_DIPSTICK in wanted and rng.random() < 0.08:
            grade = rng.choice(("Negative", "Negative", "Trace", "1+", "2+"))
            drawn.append((URINE_DIPSTICK, "Protein [Presence] in Urine by Test strip", "laboratory",
                          {"valueString": grade}))
        for code, display, category, value in drawn[: count - len(result)]:
            taken = moment + timedelta(minutes=rng.randrange(0, 40))
            result.append(observation(f"obs-{len(result) + 1:05d}", patient_id, code, display, taken, category, value))
        first = False
        moment -= timedelta(days=step_days * rng.uniform(0.6, 1.4))
    return result


@dataclass(frozen=True)
class Drug:
    text: str
    code: str | None  # RxNorm (verified ingredient codes, or the sandbox's clinical drug code)
    dose: float
    unit: str  # UCUM code of the dose
    per_day: int
    route: str  # a key of ROUTES
    days: int  # course length of one order


ROUTES = {"oral": ("26643006", "Oral route"), "iv": ("47625008", "Intravenous route")}

# Current maintenance (active orders) and the drugs of his history (refilled, completed, stopped).
CURRENT = (
    Drug("tacrolimus 1 MG Oral Capsule", "42316", 2, "mg", 2, "oral", 90),
    Drug("mycophenolate mofetil 500 MG Oral Tablet", "68149", 500, "mg", 2, "oral", 90),
    Drug("prednisone 5 MG Oral Tablet", None, 5, "mg", 1, "oral", 90),
    Drug("sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet", "10831", 1, "{tablet}", 1, "oral", 90),
    Drug("amlodipine 5 MG Oral Tablet", None, 5, "mg", 1, "oral", 90),
    Drug("pantoprazole 40 MG Delayed Release Oral Tablet", None, 40, "mg", 1, "oral", 90),
)
VALGANCICLOVIR_PROPHYLAXIS = Drug("valganciclovir 450 MG Oral Tablet", "313566", 2, "{pill}", 1, "oral", 100)
VALGANCICLOVIR_INDUCTION = Drug("valganciclovir 450 MG Oral Tablet", "313566", 2, "{pill}", 2, "oral", 21)
PAST = CURRENT + (
    VALGANCICLOVIR_PROPHYLAXIS,
    VALGANCICLOVIR_INDUCTION,
    Drug("ganciclovir 500 MG Injection", None, 350, "mg", 2, "iv", 10),
    Drug("mycophenolate mofetil 500 MG Oral Tablet", "68149", 1000, "mg", 2, "oral", 90),
    Drug("tacrolimus 1 MG Oral Capsule", "42316", 4, "mg", 2, "oral", 90),
    Drug("ciprofloxacin 500 MG Oral Tablet", None, 500, "mg", 2, "oral", 7),
    Drug("nitrofurantoin 100 MG Oral Capsule", None, 100, "mg", 2, "oral", 5),
    Drug("fluconazole 200 MG Oral Tablet", None, 200, "mg", 1, "oral", 14),
    Drug("metoprolol tartrate 25 MG Oral Tablet", None, 25, "mg", 2, "oral", 90),
    Drug("atorvastatin 20 MG Oral Tablet", None, 20, "mg", 1, "oral", 90),
)


def medication_request(id_: str, patient_id: str, drug: Drug, status: str, start: date) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": drug.text}
    if drug.code:
        concept["coding"] = [{"system": RXNORM, "code": drug.code, "display": drug.text}]
    route_code, route_display = ROUTES[drug.route]
    return {
        "resourceType": "MedicationRequest",
        "id": id_,
        "status": status,
        "intent": "order",
        "subject": _reference("Patient", patient_id),
        "authoredOn": start.isoformat(),
        "medicationCodeableConcept": concept,
        "dosageInstruction": [{
            "text": f"{drug.dose:g} {drug.unit.strip('{}')} {drug.per_day} times daily",
            "timing": {"repeat": {
                "frequency": drug.per_day, "period": 1, "periodUnit": "d",
                "boundsPeriod": {"start": start.isoformat(),
                                 "end": (start + timedelta(days=drug.days)).isoformat()}}},
            "route": {"coding": [{"system": SNOMED, "code": route_code, "display": route_display}]},
            "doseAndRate": [{"doseQuantity": {"value": drug.dose, "unit": drug.unit, "system": UCUM, "code": drug.unit}}],
        }],
        "dispenseRequest": {"expectedSupplyDuration": {"value": drug.days, "unit": "days", "system": UCUM, "code": "d"}},
    }


def medications(patient_id: str, count: int, seed: int) -> list[dict[str, Any]]:
    """The current regimen (active) plus `count - 6` past orders spread over the years since transplant."""
    rng = random.Random(seed)
    today = NOW.date()
    result = [
        medication_request(f"med-{i + 1:04d}", patient_id, drug, "active", today - timedelta(days=rng.randrange(5, 60)))
        for i, drug in enumerate(CURRENT[:count])
    ]
    span = (today - TRANSPLANT_DATE).days
    while len(result) < count:
        drug = rng.choice(PAST)
        start = TRANSPLANT_DATE + timedelta(days=rng.randrange(0, span - 60))
        status = "stopped" if rng.random() < 0.2 else "completed"
        result.append(medication_request(f"med-{len(result) + 1:04d}", patient_id, drug, status, start))
    return result


# (system, code, display): his active problems, and resolved ones that recur over the years.
ACTIVE_PROBLEMS = (
    (ICD10, "Z94.0", "Kidney transplant status"),
    (SNOMED, "28944009", "Cytomegalovirus infection"),
    (ICD10, "I10", "Essential (primary) hypertension"),
    (ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
    (ICD10, "E78.5", "Hyperlipidemia, unspecified"),
)
RESOLVED_PROBLEMS = (
    (ICD10, "N39.0", "Urinary tract infection, site not specified"),
    (ICD10, "J18.9", "Pneumonia, unspecified organism"),
    (ICD10, "T86.11", "Kidney transplant rejection"),
    (ICD10, "B25.9", "Cytomegaloviral disease, unspecified"),
    (ICD10, "D70.9", "Neutropenia, unspecified"),
    (ICD10, "E87.1", "Hypo-osmolality and hyponatremia"),
    (ICD10, "A08.4", "Viral intestinal infection, unspecified"),
)


def condition(id_: str, patient_id: str, coding: tuple[str, str, str], onset: date, abated: date | None) -> dict[str, Any]:
    system, code, display = coding
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": id_,
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "resolved" if abated else "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
            "code": "problem-list-item" if not abated else "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": _reference("Patient", patient_id),
        "onsetDateTime": onset.isoformat(),
        "recordedDate": onset.isoformat(),
    }
    if abated:
        resource["abatementDateTime"] = abated.isoformat()
    return resource


def conditions(patient_id: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    today = NOW.date()
    onsets = (TRANSPLANT_DATE, today - timedelta(days=20), date(2015, 6, 1), date(2016, 2, 1), date(2017, 9, 1))
    result = [
        condition(f"cond-{i + 1:04d}", patient_id, problem, onset, None)
        for i, (problem, onset) in enumerate(zip(ACTIVE_PROBLEMS[:count], onsets))
    ]
    span = (today - TRANSPLANT_DATE).days
    while len(result) < count:
        onset = TRANSPLANT_DATE + timedelta(days=rng.randrange(30, span - 90))
        abated = onset + timedelta(days=rng.randrange(5, 60))
        result.append(condition(f"cond-{len(result) + 1:04d}", patient_id, rng.choice(RESOLVED_PROBLEMS), onset, abated))
    return result


def patient(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": "Bench", "given": ["Kidney"]}],
        "gender": "male",
        "birthDate": BIRTH_DATE.isoformat(),
    }


def allergies(patient_id: str) -> list[dict[str, Any]]:
    return [{
        "resourceType": "AllergyIntolerance",
        "id": "allergy-0001",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
        "code": {"text": "Penicillins"},
        "patient": _reference("Patient", patient_id),
        "reaction": [{"manifestation": [{"text": "Hives"}]}],
    }]


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def valganciclovir_draft(patient_id: str) -> dict[str, Any]:
    """The order being signed: valganciclovir 2 x 450 mg twice daily (induction dose for normal
    kidneys), R4, dosed as a count of tablets the way the sandbox sends it."""
    draft = medication_request("draft-valganciclovir", patient_id, VALGANCICLOVIR_INDUCTION, "draft", NOW.date())
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {"value": 2, "system": UCUM, "code": "{pill}"}
    return draft


# ---------------------------------------------------------------------------------------------
# Hook requests

HOOKS = ("patient-view", "order-sign")
SERVICE_IDS = {"patient-view": "cmv-patient-view", "order-sign": "cmv-order-sign"}


@dataclass(frozen=True)
class HookRequest:
    """A hook request serialised once.  `body(instance)` splices in a fresh hookInstance without
    copying the (possibly megabytes of) rest, so the client's cost per call stays negligible."""

    size: Size
    hook: str
    path: str
    head: bytes  # b'{"hookInstance":"'
    rest: bytes  # b'","hook":...,"prefetch":{...}}'

    def chunks(self) -> tuple[bytes, bytes, bytes]:
        return self.head, str(uuid.uuid4()).encode(), self.rest

    def body(self) -> bytes:
        return b"".join(self.chunks())

    def __len__(self) -> int:
        return len(self.head) + 36 + len(self.rest)


def hook_request(size: Size, hook: str, codes: tuple[str, ...], shuffle: bool = False, seed: int = 6) -> HookRequest:
    patient_id = f"bench-{size.observations}"
    observations_ = observations(patient_id, size.observations, codes, seed)
    if shuffle:
        random.Random(seed).shuffle(observations_)
    context: dict[str, Any] = {"userId": "Practitioner/bench-clinician", "patientId": patient_id}
    if hook == "order-sign":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": valganciclovir_draft(patient_id)}]}
    body = {
        "hookInstance": "",
        "hook": hook,
        "context": context,
        "prefetch": {
            "patient": patient(patient_id),
            "observations": searchset(observations_),
            "medications": searchset(medications(patient_id, size.medications, seed)),
            "conditions": searchset(conditions(patient_id, size.conditions, seed)),
            "allergies": searchset(allergies(patient_id)),
        },
    }
    text = json.dumps(body, separators=(",", ":")).encode()
    head, rest = text.split(b'""', 1)  # hookInstance is the first key: its empty value splits the body
    return HookRequest(size, hook, f"/cds-services/{SERVICE_IDS[hook]}", head + b'"', b'"' + rest)

