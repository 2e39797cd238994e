"""FHIR R4 resources for suggestions: medication orders, lab orders and consult requests.

The code tables hold only codes we are sure of (the clinical reference's verified codes, or codes the
CDS Hooks sandbox itself sends); anything else is ordered by text alone.  Updated orders are copies
of the order as the EHR sent it, so DSTU2 MedicationOrders keep their DSTU2 shape.

Schedules: words that name a frequency decide the timing, since they are the label's (twice daily
-> 2 per 1 d, twice weekly -> 2 per 1 wk, 3 times weekly after dialysis -> 3 per 1 wk).  Otherwise a
fixed interval is `frequency 1 per <interval>`, in days when it is a whole number of days (every 48 h
-> 1 per 2 d), else in hours (every 12 h -> 1 per 12 h): "every 12 h" stays distinct from "twice
daily", which is not the same order for an IV drug.  The words are kept as timing.code.text.
"""

from __future__ import annotations

import re
from dataclasses import field
from collections.abc import Mapping  # isinstance against it: three times faster than typing.Mapping
from typing import Any

from cds_service.clinical.findings import ConsultProposal, DoseProposal, LabOrderProposal
from cds_service.facts.fhir import cached_by_text
from cds_service.frozen import frozen

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DRUG_FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"

# ---------------------------------------------------------------------------------------------
# Tables


@frozen
class Drug:
    name: str
    atc: str | None  # None where the ATC code is unverified (maribavir J05AX10 is marked '?')
    brands: tuple[str, ...] = ()
    # strength (mg) -> (RxNorm clinical drug code, display) for tablet products we can order by count
    tablets: Mapping[float, tuple[str, str]] = field(default_factory=dict)


# RxNorm ingredient codes for these drugs are unverified (reference section 10): new orders carry the
# ATC code, which is enough for the sandbox to apply them (it needs coding[0].code and text).
_VALGANCICLOVIR_450 = "valganciclovir 450 MG Oral Tablet"
DRUGS: Mapping[str, Drug] = {
    d.name: d
    for d in (
        Drug("ganciclovir", "J05AB06", ("cytovene",)),
        # 313566 is the clinical drug the sandbox itself sends for valganciclovir 450 mg tablets.
        Drug("valganciclovir", "J05AB14", ("valcyte",), {450.0: ("313566", _VALGANCICLOVIR_450)}),
        Drug("foscarnet", "J05AD01", ("foscavir",)),
        Drug("cidofovir", "J05AB12", ("vistide",)),
        Drug("letermovir", "J05AX18", ("prevymis",)),
        Drug("maribavir", None, ("livtencity",)),
    )
}


@frozen
class Route:
    code: str  # SNOMED CT
    display: str
    words: str  # in a dose instruction: "900 mg by mouth every 12 h"


ROUTES: Mapping[str, Route] = {
    "iv": Route("47625008", "Intravenous route", "by IV infusion"),  # the anti-CMV drugs given IV are all infused
    "oral": Route("26643006", "Oral route", "by mouth"),
}


@frozen
class LabTest:
    text: str  # what the clinician reads
    loinc: tuple[str, str] | None = None  # (code, display); None: ordered by text
    laboratory: bool = True  # category "Laboratory procedure"


# LOINC codes from the clinical reference (section 10, check digits verified) plus the CBC panel.
TESTS: Mapping[str, LabTest] = {
    "creatinine": LabTest("Serum creatinine", ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma")),
    "weight": LabTest("Body weight", ("29463-7", "Body weight"), laboratory=False),
    "height": LabTest("Body height", ("8302-2", "Body height"), laboratory=False),
    "cbc": LabTest("Complete blood count", ("58410-2", "CBC panel - Blood by Automated count")),
    "cmv-pcr": LabTest(
        "CMV DNA viral load (PCR), plasma",
        (
            "72493-0",
            "Cytomegalovirus DNA [Units/volume] (viral load) in Serum or Plasma by NAA with probe detection",
        ),
    ),
    "magnesium": LabTest("Serum magnesium", ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma")),
    "calcium": LabTest("Serum calcium", ("17861-6", "Calcium [Mass/volume] in Serum or Plasma")),
    "ionized-calcium": LabTest("Ionized calcium", ("1994-3", "Calcium.ionized [Moles/volume] in Blood")),
    "phosphate": LabTest("Serum phosphate", ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma")),
    "potassium": LabTest("Serum potassium", ("2823-3", "Potassium [Moles/volume] in Serum or Plasma")),
    "urine-protein": LabTest("Urine protein", ("2888-6", "Protein [Mass/volume] in Urine")),
    "urine-protein-dipstick": LabTest(
        "Urine protein (dipstick)", ("5804-0", "Protein [Mass/volume] in Urine by Test strip")
    ),
    "electrolytes": LabTest("Electrolytes: potassium, calcium, ionized calcium, magnesium, phosphate"),
    "cmv-genotype": LabTest("CMV antiviral resistance genotype"),  # genes: the proposal's scope
    "pp65": LabTest("CMV pp65 antigenemia"),
    "colonic-biopsy": LabTest(
        "Colonic biopsy with histology and CMV immunohistochemistry", laboratory=False
    ),
}
LABORATORY_CATEGORY = {"coding": [{"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}]}

# specialty key -> (what is requested, who performs it); text only (no verified codes).
CONSULTS: Mapping[str, tuple[str, str]] = {
    "infectious-disease": ("Infectious diseases consultation", "Infectious diseases"),
    "gastroenterology": ("Gastroenterology consultation", "Gastroenterology"),
    "ophthalmology": ("Ophthalmology consultation", "Ophthalmology"),
    "transplant": ("Transplant team consultation", "Transplant medicine"),
    "nephrology": ("Nephrology consultation", "Nephrology"),
    "hiv": ("HIV specialist consultation", "HIV medicine"),
}

# Recurrence of a lab order -> timing.repeat.
RECURRENCES: Mapping[str, dict] = {
    "daily": {"frequency": 1, "period": 1, "periodUnit": "d"},
    "weekly": {"frequency": 1, "period": 1, "periodUnit": "wk"},
    "twice weekly": {"frequency": 2, "period": 1, "periodUnit": "wk"},
    "2-3 times weekly": {"frequency": 2, "frequencyMax": 3, "period": 1, "periodUnit": "wk"},
    "every 1-2 weeks": {"frequency": 1, "period": 1, "periodMax": 2, "periodUnit": "wk"},
}

# Schedule words that name a frequency -> (frequency, period, unit); first match wins.  The words
# are the label's ("twice daily", "3 times weekly after dialysis"), so they decide the timing.
_SCHEDULE_WORDS: tuple[tuple[re.Pattern, tuple[int, int, str]], ...] = tuple(
    (re.compile(pattern.replace(" ", r"[\s-]+"), re.IGNORECASE), repeat)  # "twice-daily" too
    for pattern, repeat in (
        (r"\b5 days (a |per )?week\b", (5, 1, "wk")),
        (r"\b(3|three) times (a |per )?week|\b3\s*[x×]\s*/\s*w(ee)?k\b", (3, 1, "wk")),
        (r"\b(twice|2 times) (a |per )?week|\b2\s*[x×]\s*/\s*w(ee)?k\b", (2, 1, "wk")),
        (r"\bevery (2|two) weeks\b", (1, 2, "wk")),
        (r"\b(once (a |per )?week|weekly)\b", (1, 1, "wk")),
        (r"\bevery (other|2|two) days?\b", (1, 2, "d")),
        (r"\b(3|three) times (a |per )?day|\b(3|three) times daily\b", (3, 1, "d")),
        (r"\b(twice|2 times) (a |per )?day|\b(twice|2 times) daily\b", (2, 1, "d")),
        (r"\b(once (a |per )?day|once daily|daily)\b", (1, 1, "d")),
    )
)

# Dose units that count units of a product (tablets, capsules) rather than measure a mass.
_COUNT_WORDS = {"tablet", "tablets", "tab", "tabs", "pill", "pills", "capsule", "capsules", "cap", "caps"}


# ---------------------------------------------------------------------------------------------
# Small helpers


def number(value: float) -> int | float:
    """2.0 -> 2: JSON without spurious decimals."""
    return int(value) if float(value).is_integer() else value


def fmt(value: float) -> str:
    return f"{value:g}"


def plain(value: Any) -> Any:
    """A deep copy as plain JSON types (dict, list), whatever read-only mappings the facts layer used."""
    if isinstance(value, (str, int, float)) or value is None:  # most of a resource, and quick to tell
        return value
    # dict and list before the Mapping ABC, whose isinstance check is slow: parsed JSON never needs it.
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def patient_reference(patient_id: str) -> dict:
    return {"reference": patient_id if patient_id.startswith("Patient/") else f"Patient/{patient_id}"}


def days(duration_days: float) -> dict:
    return {"value": number(duration_days), "unit": "days", "system": UCUM, "code": "d"}


def _codings(concept: Mapping) -> list[Mapping]:
    """A CodeableConcept's codings, whatever the client sent in `coding` (a number, an object, ...)."""
    coding = concept.get("coding")
    return [c for c in coding if isinstance(c, Mapping)] if isinstance(coding, list) else []


def _names(concept: Mapping) -> list[str]:
    """A CodeableConcept's text and its codings' displays (the texts among them)."""
    return [t for t in (concept.get("text"), *(c.get("display") for c in _codings(concept))) if isinstance(t, str)]


def mentions_drug(concept: Mapping | None, drug: str) -> bool:
    """Whether a medication CodeableConcept names `drug` (by name, brand or one of our codes).

    Whole words only: "ganciclovir" is not found in "valganciclovir"."""
    if not isinstance(concept, Mapping):
        return False
    known = DRUGS.get(drug)
    names = (drug, *(known.brands if known else ()))
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
    if any(pattern.search(t) for t in _names(concept)):
        return True
    codes = ({known.atc, *(code for code, _ in known.tablets.values())} - {None}) if known else set()
    return any(c.get("code") in codes for c in _codings(concept))


def medication_concept(drug: str, tablet_strength_mg: float | None = None) -> dict:
    """The concept a new order carries: the tablet product when we know it, else the ingredient."""
    known = DRUGS.get(drug)
    if known and tablet_strength_mg in known.tablets:
        code, display = known.tablets[tablet_strength_mg]
        return {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}
    concept: dict[str, Any] = {"text": drug}
    if known and known.atc:
        concept["coding"] = [{"system": ATC, "code": known.atc, "display": drug}]
    return concept


def _is_count(quantity: Any) -> bool:
    if not isinstance(quantity, Mapping):
        return False
    code, unit = str(quantity.get("code") or ""), str(quantity.get("unit") or "").lower()
    return (
        (code.startswith("{") and code.endswith("}"))  # UCUM annotation: a dimensionless count
        or quantity.get("system") == DRUG_FORM
        or unit in _COUNT_WORDS
    )


def _first_dosage(order: Mapping) -> Mapping:
    dosages = order.get("dosageInstruction")
    first = dosages[0] if isinstance(dosages, list) and dosages else None
    return first if isinstance(first, Mapping) else {}


def _dose_quantity(dosage: Mapping) -> Any:
    if "doseQuantity" in dosage:  # DSTU2
        return dosage["doseQuantity"]
    rates = dosage.get("doseAndRate")
    first = rates[0] if isinstance(rates, list) and rates else None
    return first.get("doseQuantity") if isinstance(first, Mapping) else None


# ---------------------------------------------------------------------------------------------
# Doses


_STATES_LENGTH = re.compile(r"\bfor \d+ (days?|weeks?)\b|\bto day \d+\b")  # "once weekly to day 14 of the course"


def dose_text(p: DoseProposal) -> str:
    """'900 mg (2 × 450 mg tablets) by mouth every 12 h for 21 days; take with food', '6300 mg by IV infusion over
    90 min every 12 h; hydration ...'."""
    amount = f"{fmt(p.dose_mg)} mg"
    if p.unit_count is not None:
        units = "tablet" if p.unit_count == 1 else "tablets"
        each = f" × {fmt(p.unit_strength_mg)} mg" if p.unit_strength_mg is not None else ""
        amount += f" ({fmt(p.unit_count)}{each} {units})"
    how = ROUTES[p.route].words
    if p.infusion_minutes is not None:  # the timing's duration, said in the words the EHR shows
        how += f" over {fmt(p.infusion_minutes)} min"
    text = f"{amount} {how} {p.schedule}".strip()
    if p.duration_days is not None and not _STATES_LENGTH.search(p.schedule):  # "once weekly for 2 weeks" says it
        text += f" for {fmt(p.duration_days)} days"
    if p.note:
        text += f"; {p.note}"
    return text


def _repeat(p: DoseProposal, unit_key: str) -> dict:
    """timing.repeat for the proposal's schedule; `unit_key` is periodUnit (R4) or periodUnits (DSTU2)."""
    for pattern, (frequency, period, unit) in _SCHEDULE_WORDS:
        if pattern.search(p.schedule):
            return {"frequency": frequency, "period": period, unit_key: unit}
    hours = p.interval_hours
    if hours is not None and hours > 0:
        if float(hours / 24).is_integer():
            return {"frequency": 1, "period": number(hours / 24), unit_key: "d"}
        return {"frequency": 1, "period": number(hours), unit_key: "h"}
    return {}


def dosage(
    p: DoseProposal,
    *,
    dstu2: bool = False,
    count_unit: Mapping | None = None,
    bounds: Mapping | None = None,
) -> dict:
    """One Dosage (R4) or MedicationOrder.dosageInstruction (DSTU2) for the proposal.

    count_unit: the quantity template (unit/system/code) to dose in units of the product; only
    given when the order's medication is that product.  Otherwise the dose is in mg.
    bounds: timing.repeat bounds to keep from the original order (replaced by the proposal's duration).
    """
    if count_unit is not None and p.unit_count is not None:
        keep = ("unit", "system", "code")
        quantity = {"value": number(p.unit_count), **{k: count_unit[k] for k in keep if count_unit.get(k)}}
    else:
        quantity = {"value": number(p.dose_mg), "unit": "mg", "system": UCUM, "code": "mg"}
    repeat = _repeat(p, "periodUnits" if dstu2 else "periodUnit")
    if p.duration_days is not None:
        repeat["boundsQuantity" if dstu2 else "boundsDuration"] = days(p.duration_days)
    elif bounds:
        repeat.update(plain(bounds))
    if p.infusion_minutes is not None:  # how long each dose runs
        repeat.update({"duration": number(p.infusion_minutes), "durationUnit" + ("s" if dstu2 else ""): "min"})
    # The words ride along: "3 times weekly after dialysis" says more than 3 per week.
    timing: dict[str, Any] = {"repeat": repeat} if repeat else {}
    if p.schedule:
        timing["code"] = {"text": p.schedule}
    route = ROUTES[p.route]
    result: dict[str, Any] = {"text": dose_text(p)}
    if p.note and not dstu2:
        result["patientInstruction"] = p.note
    if timing:
        result["timing"] = timing
    result["route"] = {
        "coding": [{"system": SNOMED, "code": route.code, "display": route.display}],
        "text": route.display,
    }
    if dstu2:
        result["doseQuantity"] = quantity
    else:
        result["doseAndRate"] = [{"doseQuantity": quantity}]
    return result


_TABLET = {"unit": "tablet", "system": DRUG_FORM, "code": "TAB"}


def _tablet_product(p: DoseProposal) -> float | None:
    """The tablet strength to order by count, when the proposal is in tablets of a product we code."""
    known = DRUGS.get(p.drug)
    if p.unit_count is not None and known and p.unit_strength_mg in known.tablets:
        return p.unit_strength_mg
    return None


def new_medication_request(p: DoseProposal, patient_id: str) -> dict:
    tablet = _tablet_product(p)
    count_unit = _TABLET if tablet else None
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": medication_concept(p.drug, tablet),
        "subject": patient_reference(patient_id),
        "dosageInstruction": [dosage(p, count_unit=count_unit)],
    }
    if p.duration_days is not None and p.route == "oral":
        resource["dispenseRequest"] = {"expectedSupplyDuration": days(p.duration_days)}
    return resource


_BOUNDS = ("boundsPeriod", "boundsDuration", "boundsRange", "boundsQuantity")


def updated_order(original: Mapping, p: DoseProposal) -> dict:
    """The order as the EHR sent it (same id, type and medication), with the proposed dose (its
    course bounds kept).

    If its medication does not name the proposal's drug (a draft with no drug yet, or a switch),
    the medication becomes the proposal's drug: a dose must never land on another drug."""
    order = plain(original)
    dstu2 = order.get("resourceType") == "MedicationOrder"
    previous = _first_dosage(original)
    concept = order.get("medicationCodeableConcept")
    by_reference = concept is None and "medicationReference" in order  # the facts layer resolved it
    if (by_reference or mentions_drug(concept, p.drug)) and _strength_fits(_product_named(order), p.dose_mg):
        previous_quantity = _dose_quantity(previous)
        count_unit = previous_quantity if _is_count(previous_quantity) else None
        if isinstance(concept, dict) and not concept.get("text"):
            display = next((c.get("display") for c in _codings(concept) if c.get("display")), None)
            if display:
                concept["text"] = display  # clients apply a drug only when it has a text
    else:
        tablet = _tablet_product(p)
        order.pop("medicationReference", None)
        order.pop("dispenseRequest", None)  # a supply of the old product (84 tablets) is none of the new drug
        order["medicationCodeableConcept"] = medication_concept(p.drug, tablet)
        count_unit = _TABLET if tablet else None
    timing = previous.get("timing") if isinstance(previous.get("timing"), Mapping) else {}
    repeat = timing.get("repeat") if isinstance(timing.get("repeat"), Mapping) else {}
    bounds = {k: v for k, v in repeat.items() if k in _BOUNDS}
    order["dosageInstruction"] = [dosage(p, dstu2=dstu2, count_unit=count_unit, bounds=bounds)]
    dispense = order.get("dispenseRequest")
    supply = dispense.get("expectedSupplyDuration") if isinstance(dispense, dict) else None
    if p.duration_days is not None and isinstance(supply, dict):
        supply.update(days(p.duration_days))
    if isinstance(dispense, dict):
        # A quantity counted for the old dose is not the new dose's supply (84 tablets of a halved dose last
        # twice as long): left for the prescriber or pharmacy to count, never a number computed here.
        dispense.pop("quantity", None)
        if not dispense:
            order.pop("dispenseRequest")
    if not dstu2:
        _repair_r4(order)
    return order


_SOLID_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b[^;]*?\b(?:tablets?|tabs?|capsules?|caps?)\b", re.IGNORECASE)


def _product_named(order: Mapping) -> Mapping | None:
    """The order's medication as a concept: its medicationCodeableConcept, or for a medicationReference the
    reference's display and a contained Medication's code."""
    concept = order.get("medicationCodeableConcept")
    if concept is not None or not isinstance(reference := order.get("medicationReference"), Mapping):
        return concept
    texts = [reference.get("display")]
    contained = order.get("contained")
    target = str(reference.get("reference") or "").removeprefix("#")
    for resource in contained if isinstance(contained, list) else ():
        if isinstance(resource, Mapping) and resource.get("id") == target and isinstance(resource.get("code"), Mapping):
            texts += _names(resource["code"])
    return {"text": " / ".join(t for t in texts if isinstance(t, str))}


def _strength_fits(concept: Mapping | None, dose_mg: float) -> bool:
    """Whether a dose can be given in whole units of the tablet or capsule product a concept names ('letermovir
    480 MG Oral Tablet' cannot give 240 mg: the order then takes the drug's own concept, never a product whose
    strength is not the dose); a concept naming no such strength fits any dose."""
    if not isinstance(concept, Mapping):
        return True
    strengths = {s for t in _names(concept) for s in _solid_strengths(t)}
    return all(s > 0 and abs(dose_mg / s - round(dose_mg / s)) < 1e-9 and round(dose_mg / s) >= 1 for s in strengths)


@cached_by_text  # a product's name repeats across calls
def _solid_strengths(text: str) -> tuple[float, ...]:
    return tuple(float(m.group(1)) for m in _SOLID_STRENGTH.finditer(text))


def _repair_r4(order: dict) -> None:
    """Fix what clients are known to send outside R4, so the suggestion is a valid resource:
    the sandbox sends `category` as an object and, on page load, no `intent`."""
    if isinstance(order.get("category"), Mapping):
        order["category"] = [order["category"]]
    order.setdefault("status", "draft")  # an order in draftOrders is a draft
    order.setdefault("intent", "order")


def stopped_order(original: Mapping, reason: str) -> dict:
    """An active order, discontinued (status stopped), for an update action."""
    order = plain(original)
    order["status"] = "stopped"
    if order.get("resourceType") == "MedicationRequest":
        order["statusReason"] = {"text": reason}
        _repair_r4(order)
    else:  # DSTU2 MedicationOrder: the reason is reasonEnded
        order["reasonEnded"] = {"text": reason}
    return order


# ---------------------------------------------------------------------------------------------
# Lab and consult requests


def lab_test(key: str) -> LabTest:
    return TESTS.get(key) or LabTest(key.replace("-", " "))


def requested_test(p: LabOrderProposal) -> str:
    """What the request asks the lab for: the test, and its scope when the proposal gives one."""
    text = lab_test(p.test).text
    return f"{text} ({p.scope})" if p.scope else text


def lab_request(p: LabOrderProposal, patient_id: str) -> dict:
    test = lab_test(p.test)
    code: dict[str, Any] = {"text": requested_test(p)}
    if test.loinc:
        code = {"coding": [{"system": LOINC, "code": test.loinc[0], "display": test.loinc[1]}], **code}
    resource: dict[str, Any] = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order"}
    if test.laboratory:
        resource["category"] = [plain(LABORATORY_CATEGORY)]
    resource["code"] = code
    resource["subject"] = patient_reference(patient_id)
    if p.recurrence:
        repeat = RECURRENCES.get(p.recurrence.lower())
        timing: dict[str, Any] = {"repeat": dict(repeat)} if repeat else {}
        resource["occurrenceTiming"] = {**timing, "code": {"text": p.recurrence}}
    return resource


def consult(key: str) -> tuple[str, str]:
    if key in CONSULTS:
        return CONSULTS[key]
    words = key.replace("-", " ")
    return f"{words.capitalize()} consultation", words.capitalize()


def consult_request(p: ConsultProposal, patient_id: str) -> dict:
    requested, performer = consult(p.specialty)
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"text": requested},
        "subject": patient_reference(patient_id),
        "performerType": {"text": performer},
        "reasonCode": [{"text": p.reason}],
    }
