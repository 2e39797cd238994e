"""Medication orders (R4 MedicationRequest, DSTU2 MedicationOrder) -> MedicationOrder facts.

What is read: the drug (codes, names, a contained Medication), the dose per administration in mg
(mass units; mg/kg x the dosing weight; a count of tablets x the product's strength; mL x mg/mL),
the interval in hours (timing.repeat, timeOfDay, or a timing code), route (and whether it or the
method says IV push or bolus), the stated infusion time, dates and planned duration.  What cannot be
read goes to MedicationOrder.problems in words; nothing is defaulted.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any, Iterable, Mapping

from cds_service.facts import codes, drugs, fhir, units
from cds_service.facts.model import DosingWeight, MedicationOrder
from cds_service.frozen import frozen

# Orders on record that ended (or were last written) this many days ago or less are kept: the
# cidofovir label's "nephrotoxic agent in the last 7 days" and therapy history need them.
RECENT_ORDER_DAYS = 30
# Current or recently ended orders on record that are read at most, the newest: each anti-CMV order is
# checked against the others (4,000 took 4 s), and no real record holds hundreds of them.
MAX_ORDERS_ON_RECORD = 500
KEEP_STATUSES = frozenset({"active", "on-hold"})
RECENT_STATUSES = frozenset({"completed", "stopped"})

_MASS_MG = {
    "mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001,
    "milligram": 1.0, "milligrams": 1.0, "gram": 1000.0, "grams": 1000.0, "microgram": 0.001, "micrograms": 0.001,
}
_PER_KG = {"mg/kg", "mg/kg/dose"}
_PER_KG_DAY = {"mg/kg/d", "mg/kg/day"}
_COUNT_UNITS = {
    "pill": None, "pills": None,
    "tablet": "tablet", "tablets": "tablet", "tab": "tablet", "tabs": "tablet", "tbl": "tablet",
    "capsule": "capsule", "capsules": "capsule", "cap": "capsule", "caps": "capsule",
}
_VOLUME_ML = {"ml": 1.0, "l": 1000.0}
# What each unit read here means: a unit string and a UCUM code that mean different things
# ({"unit": "g", "code": "mg"}) leave the amount unknown.
_UNIT_MEANING = {
    **{unit: ("mass", mg) for unit, mg in _MASS_MG.items()},
    **{unit: ("volume", ml) for unit, ml in _VOLUME_ML.items()},
    **{unit: ("count",) for unit in _COUNT_UNITS},
    **{unit: ("mg/kg",) for unit in _PER_KG},
    **{unit: ("mg/kg/d",) for unit in _PER_KG_DAY},
}

_HOURS_PER_UNIT = {"s": 1 / 3600, "min": 1 / 60, "h": 1.0, "d": 24.0, "wk": 168.0, "mo": 720.0, "a": 8760.0}
_DAYS_PER_UNIT = {
    "h": 1 / 24, "hour": 1 / 24, "hours": 1 / 24,
    "d": 1.0, "day": 1.0, "days": 1.0,
    "wk": 7.0, "week": 7.0, "weeks": 7.0,
    "mo": 30.0, "month": 30.0, "months": 30.0,
}
# Timing abbreviations (HL7 v3 GTSAbbreviation and common usage) -> hours between doses.
TIMING_CODES = {
    "QD": 24, "DAILY": 24, "QDAY": 24, "OD": 24, "AM": 24, "PM": 24, "BED": 24, "HS": 24, "QHS": 24,
    "BID": 12, "TID": 8, "QID": 6, "QOD": 48, "WK": 168, "QWK": 168, "WEEKLY": 168,
    "BIW": 84, "TIW": 56,
}
# Frequency words: "2 times daily", "twice-daily", "3x weekly" (hyphens read as spaces) -> hours.
_TIMES = {"once": 1, "one": 1, "twice": 2, "two": 2, "thrice": 3, "three": 3, "four": 4}
_PER_PERIOD_HOURS = {"day": 24.0, "daily": 24.0, "week": 168.0, "weekly": 168.0}
_COUNT_PER_PERIOD = re.compile(
    r"\b(?:(?P<word>once|twice|thrice)|(?P<count>one|two|three|four|[1-6])\s*(?:times?|x))"
    r"\s+(?:a\s+|per\s+|each\s+)?(?P<period>daily|day|weekly|week)\b"
)


def _count_per_period_hours(match: re.Match) -> float:
    times = match["word"] or match["count"]
    return _PER_PERIOD_HOURS[match["period"]] / (_TIMES.get(times) or int(times))


_TIMING_WORDS = (  # most specific first: words one pattern has read are not read again ("twice daily": not "daily")
    (re.compile(r"\bq\s*(\d+(?:\.\d+)?)\s*h(?:ours?|rs?)?\b"), lambda m: float(m.group(1))),
    (re.compile(r"\bevery\s+(\d+(?:\.\d+)?)\s*(?:hours?|hrs?|h)\b"), lambda m: float(m.group(1))),
    (re.compile(r"\bevery\s+(\d+)\s*days?\b"), lambda m: 24.0 * float(m.group(1))),
    (re.compile(r"\bevery\s+(\d+)\s*weeks?\b"), lambda m: 168.0 * float(m.group(1))),
    (re.compile(r"\bevery\s+other\s+day\b"), lambda m: 48.0),
    (_COUNT_PER_PERIOD, _count_per_period_hours),
    (re.compile(r"\b(?:every\s+day|daily)\b"), lambda m: 24.0),
    (re.compile(r"\b(?:every\s+week|weekly)\b"), lambda m: 168.0),
)
# Frequency words that name no single interval: which one applies is unknown.
_COUNT = r"\d+(?:\.\d+)?|once|twice|thrice|one|two|three|four"
_NOT_ONE_INTERVAL = (
    # A schedule in phases: "once daily x 21 days then twice daily".
    (re.compile(r"\b(?:then|followed\s+by|thereafter|after\s+which|taper\w*|step\s+down|"
                r"(?:increas|decreas|reduc|chang|switch)\w*\s+to)\b"), "changes over the course"),
    # A range: "once or twice daily", "2 to 3 times daily", "every 8-12 hours" (read "8 12").
    (re.compile(rf"\b(?:{_COUNT})\s+(?:to|or)\s+(?:{_COUNT})\b|\b\d+(?:\.\d+)?\s+\d"), "is a range"),
)

# Routes: SNOMED codes in codes.py; words here.  Local routes make the order non-systemic.
_ROUTE_WORDS = (
    ("local", re.compile(
        r"\b(?:topical\w*|ophthalmic|intravitreal|intraocular|otic|nasal|intranasal|inhal\w*|nebuli\w*|"
        r"rectal|vaginal|cutaneous|transdermal|dermal|intrathecal|intravesical|intra\s*articular|eye|ear)\b"
    )),
    ("iv", re.compile(r"\b(?:intravenous\w*|iv|i\s*v|ivpb)\b")),
    ("oral", re.compile(r"\b(?:oral\w*|by\s+mouth|po|p\s*o|per\s+os|swallow)\b")),
    ("intramuscular", re.compile(r"\b(?:intramuscular\w*|im|i\s*m)\b")),
    ("subcutaneous", re.compile(r"\b(?:subcutaneous\w*|subcut\w*|sc|s\s*c|sq|subq)\b")),
    # A feeding tube: what goes down it is crushed or liquid (valganciclovir's label: do not crush tablets).
    ("enteral tube", re.compile(
        r"\b(?:naso\s*gastric|oro\s*gastric|naso\s*(?:duodenal|jejunal)|gastrostomy|jejunostomy|peg|ng|og|nj|"
        r"ngt|g\s*tube|j\s*tube|gastric\s+tube|feeding\s+tube|enteral\w*|(?:via|per|by)\s+tube)\b"
    )),
)
_ENTERAL_TUBE = dict(_ROUTE_WORDS)["enteral tube"]
# An injection given at once rather than infused (ganciclovir's label: never a rapid IV bolus), unless
# a negation comes right before it ("IV infusion, not bolus", "do not give as an IV push", "non-bolus",
# "not for IV push or bolus");
# a negation further away is about something else ("not to exceed 10 mg/min IV push").
_BOLUS_WORDS = re.compile(r"\b(?:push|bolus)\b")
_BOLUS_NEGATED = re.compile(
    r"\b(?:no|not|never|avoid|without|non|don t)\s+"
    r"(?:(?:to|be|give|given|administer|administered|use|used|for|as|by|a|an|iv|rapid|infusion|injection|push|bolus|"
    r"or|and)\s+)*$"
)
# In an instruction's free text (the sig) the words must name an injection of the drug: "IV push", "IVP",
# "rapid bolus", "given as a bolus", "pushed over 2 minutes", "by rapid IV injection"; read clause by clause,
# not one a negation shortly before it rules out ("do not give rapidly or by IV push", "rather than IV push"),
# nor one said of itself ("IV push should be avoided", "IV push increases toxicity"), nor a flush or a fluid
# bolus ("flush with 10 mL NS IV push", "NS 500 mL IV bolus"): a flush or a fluid named since the drug's last
# dose is what is pushed.  The drug in its own diluent ("175 mg in 250 mL NS IV push") is pushed.  A negation
# reaches over commas only through one list (_negation_reach).
_BOLUS_IN_TEXT = re.compile(
    r"\b(?:ivp|ivpush"
    r"|(?:iv|intravenous(?:ly)?|rapid|slow|by)\s+(?:push(?:ed)?|bolus)"
    r"|(?:push(?:ed)?|bolus)\s+(?:iv|intravenous(?:ly)?|injection|over\s+\d+)"
    r"|as\s+(?:an?\s+)?(?:iv\s+)?(?:push|bolus)(?!\s+of\b)"
    r"|(?:rapid|slow)\s+(?:iv\s+|intravenous\s+)?injection"
    r"|(?:iv|intravenous)\s+injection\s+over\s+\d+)\b"
)
_CLAUSE_END = re.compile(r"[;!?\n]|\.(?=\s|$)")  # not the point of "12.5 mg"
_NEGATION_WORDS = frozenset({"no", "not", "never", "avoid", "avoiding", "without", "non", "don", "instead", "rather"})
_NEGATION_REACH = 6  # words before the push or bolus a negation still reaches
_NEGATED_AFTER = re.compile(
    r"^\s*(?:(?:or|and)?\s*(?:iv\s+)?(?:push|bolus|injection)\s+)?"  # "IV push or bolus should be avoided"
    r"(?:(?:is|are|should|must|may|can|to|be)\s+)*(?:not|never|avoided|contraindicated|prohibited|forbidden)\b"
    r"|^\s*(?:\w+\s+){0,3}?(?:toxicit\w*|harm\w*)\b"
)
# The words of a list of ways not to give it ("not for IM, SC, or by IV push", "avoid rapid infusion, IV push"):
# a negation reaches over commas only through phrases made of these (_negation_reach).
_LIST_WORDS = _NEGATION_WORDS | frozenset({
    "im", "sc", "sq", "subq", "iv", "intramuscular", "intramuscularly", "subcutaneous", "subcutaneously", "intravenous",
    "intravenously", "push", "pushed", "bolus", "rapid", "rapidly", "fast", "infusion", "injection", "slow", "slowly",
    "for", "by", "or", "and", "as", "a", "an", "via", "to", "be", "do", "t", "give", "given", "administer", "administered",
    "use", "used",
})
_FLUID_OR_FLUSH = re.compile(r"\b(?:flush\w*|ns|saline|fluids?|lr|ringer|d5w)\b")
_DRUG_DOSE = re.compile(r"\b\d+(?:\.\d+)?\s*(?:mg|mcg|g)\b")
# The drug's own diluent right after its dose, however written ("175 mg in 100 mL 0.9% NS", "(in NS 100 mL)",
# "175 mg/100 mL NS", "per 100 mL NS", "diluted to 100 mL NS"; brackets and "/" are spaces in the words read).
_FLUID_NAME = r"(?:ns|normal\s+saline|saline|d5w|lr|water)"
_DILUENT = re.compile(
    r"^\s*(?:(?:in|per|diluted\s+(?:in|to))\s+)?(?:\d+(?:\.\d+)?\s*ml\s+(?:(?:of\s+)?[\d.]+\s*%\s*)?(?:of\s+)?"
    + _FLUID_NAME + r"|" + _FLUID_NAME + r"\s+\d+(?:\.\d+)?\s*ml)\b"
)
_IV_DOTTED = re.compile(r"\bi\.v\.")
# Dose forms in a drug name ("valganciclovir 450 MG Oral Tablet", "ganciclovir 500 MG Injection").
_LOCAL_FORMS = re.compile(
    r"\b(?:ophthalmic|otic|topical|cream|ointment|lotion|gel|eye\s+drops?|ear\s+drops?|nasal|inhal\w*|"
    r"intravitreal|implant|enema|suppositor\w*|rectal|vaginal|transdermal|patch|shampoo|foam)\b"
)
_FORMS = (
    ("tablet", re.compile(r"\btab(?:let)?s?\b")),
    ("capsule", re.compile(r"\bcap(?:sule)?s?\b")),
    ("injection", re.compile(r"\b(?:injection|injectable|for\s+injection|infusion|intravenous|vial)\b")),
    ("solution", re.compile(r"\b(?:oral\s+)?(?:solution|suspension|syrup|elixir)\b")),
)
_STRENGTH = re.compile(
    r"(\d+(?:\.\d+)?)\s*(mg|g|mcg|ug|µg)\b(?!\s*/\s*(?:\d+(?:\.\d+)?\s*)?m?l\b)", re.IGNORECASE
)
_CONCENTRATION = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|g|mcg)\s*/\s*(\d+(?:\.\d+)?)?\s*ml\b", re.IGNORECASE)


def read_orders(
    resources: list[Any], *, drafts: bool, dosing_weight: DosingWeight | None, now: datetime
) -> tuple[list[MedicationOrder], int]:
    """-> (orders, skipped).  Orders on record are kept when active/on-hold (or without a status),
    or completed/stopped within RECENT_ORDER_DAYS, newest start first (then by id), so that the cards do
    not change with the order the EHR's bundle lists them in; drafts are all kept, in the hook's order
    (the clinician's: an order set's induction before its maintenance)."""
    orders: list[MedicationOrder] = []
    skipped = 0
    seen: set[str] = set()
    for index, resource in enumerate(resources):
        if not isinstance(resource, dict) or resource.get("resourceType") not in (
            "MedicationRequest", "MedicationOrder"
        ):
            skipped += 1
            continue
        try:
            # Long histories are mostly old orders: decide from status and dates before reading one.
            if not (drafts or _keep(resource, now)):
                continue
            order = read_order(resource, is_draft=drafts, dosing_weight=dosing_weight, index=index)
        except Exception as exc:  # noqa: BLE001 - defence in depth: the readers are total
            fhir.log_unexpected(str(resource.get("resourceType")), exc)
            skipped += 1
            continue
        if order.id in seen:
            skipped += 1
            continue
        seen.add(order.id)
        orders.append(order)
    return (orders if drafts else newest_first(orders)), skipped


def newest_first(orders: Iterable[MedicationOrder]) -> list[MedicationOrder]:
    """Orders on record as the facts list them: newest start first, then by id."""
    return sorted(orders, key=lambda o: (-(o.start or date.min).toordinal(), o.id))


def _keep(resource: Mapping[str, Any], now: datetime) -> bool:
    status = fhir.text(resource.get("status"))
    if status is None or status in KEEP_STATUSES:
        return True
    if status not in RECENT_STATUSES:
        return False  # cancelled, entered-in-error, draft, unknown
    # The order's end, else its start (not its planned duration: most orders of a long history
    # are skipped here, so only what the decision needs is read); the later of a start and an end that
    # contradict each other, as either may be the true one (a nephrotoxin stopped days ago still counts).
    start, end, contradiction = _start_end(resource, *_bounds(_repeat(_first_dosage(resource))))
    last = max(contradiction) if contradiction else end or start
    return last is not None and (now.date() - last).days <= RECENT_ORDER_DAYS


def read_order(
    resource: Mapping[str, Any], *, is_draft: bool, dosing_weight: DosingWeight | None, index: int = 0
) -> MedicationOrder:
    kind = resource.get("resourceType")
    kind = kind if kind in ("MedicationRequest", "MedicationOrder") else "MedicationRequest"
    resource_id = fhir.text(resource.get("id"))
    # Without an id, a name by its place in its list (the drafts' and the record's apart): no card action can
    # point at it (cards/suggestions.py), but the rules can tell the orders apart.
    order_id = (f"{kind}/{resource_id}" if resource_id
                else f"{kind}/(unidentified {'draft ' if is_draft else ''}{index + 1})")
    problems: list[str] = []
    status = fhir.text(resource.get("status"))
    intent = fhir.text(resource.get("intent"))
    dosages = [d for d in fhir.items(resource.get("dosageInstruction")) if isinstance(d, dict)]
    dosage = dosages[0] if dosages else {}
    start, end, duration = _dates(resource, dosage, problems)

    concept, medication = _medication(resource, problems)
    if concept is None:
        # Nothing ordered yet (the sandbox's first order-select fires before a drug is chosen).
        return MedicationOrder(id=order_id, ingredient=None, drug_text=None, is_draft=is_draft, status=status,
                               intent=intent, start=start, end=end, duration_days=duration, resource=resource)
    if len(dosages) > 1:
        problems.append(f"{len(dosages)} dosage instructions: only the first is read")

    # Most orders name their drug in a concept that recurs (the same drugs, across orders and calls).
    product = _coded_product(concept) if medication is None else _product(concept, medication)
    drug_text, ingredients, form_text, local_form, dose_form = (
        product.drug_text, product.ingredients, product.form_text, product.local_form, product.dose_form)
    problems += product.problems
    route, route_text, route_local, route_problem = _route(dosage.get("route"))
    problems += route_problem
    if route is None and route_text is None:
        route = {"tablet": "oral", "capsule": "oral", "injection": "iv"}.get(dose_form or "")
        if route is None and dose_form == "solution" and re.search(r"\boral\b", form_text.lower()):
            route = "oral"
    systemic = not (route_local or (local_form and route is None))
    if route is not None and local_form:
        problems.append(f"route {route.upper() if route == 'iv' else route} but the product is a local form")

    strength, concentration = product.strength, product.concentration
    dose = _dose(dosage, strength, concentration, dose_form, dosing_weight, problems)
    interval, timing_basis = _interval(dosage.get("timing"), problems)

    ingredient = "/".join(ingredients) if ingredients else None
    return MedicationOrder(
        id=order_id,
        ingredient=ingredient,
        drug_text=drug_text,
        classes=drugs.classes_of(ingredients, route, dose_form) if systemic else frozenset(),
        is_draft=is_draft,
        status=status,
        intent=intent,
        dose_mg=dose.get("dose_mg"),
        dose_basis=dose.get("basis"),
        mg_per_kg=dose.get("mg_per_kg"),
        unit_count=dose.get("unit_count"),
        unit_strength_mg=strength,
        dose_form=dose_form or dose.get("form"),  # the name's form, else the unit the dose is counted in
        interval_hours=interval,
        timing_basis=timing_basis,
        route=route,
        start=start,
        end=end,
        duration_days=duration,
        problems=tuple(problems),
        route_text=route_text,
        bolus_text=_bolus(dosage),
        infusion_minutes=_infusion_minutes(_repeat(dosage)),
        systemic=systemic,
        resource=resource,
    )


@frozen
class _Product:
    """What an order's drug concept (and its contained Medication) says of the drug."""

    drug_text: str | None  # the first name
    ingredients: tuple[str, ...]  # by name, else by code; none when names and codes disagree
    problems: tuple[str, ...]
    form_text: str  # the names and forms, for the dose form and strength
    local_form: bool
    dose_form: str | None
    strength: float | None  # mg per unit
    concentration: float | None  # mg per mL


def _product(concept: Mapping[str, Any], medication: Mapping[str, Any] | None) -> _Product:
    names = fhir.concept_texts(concept)
    product = fhir.mapping((medication or {}).get("product")) or {}  # DSTU2 Medication.product
    for ingredient in fhir.items((medication or {}).get("ingredient")) + fhir.items(product.get("ingredient")):
        if isinstance(ingredient, dict):
            names += fhir.concept_texts(ingredient.get("itemCodeableConcept") or ingredient.get("item"))
    problems = []
    ingredients: list[str] = []
    coded = list(dict.fromkeys(
        i for i in (codes.drug_code(system, code) for system, code, _ in fhir.codings(concept)) if i
    ))
    named = drugs.ingredients_named(names)
    if coded and named and not set(coded) & set(named):
        problems.append(f"drug coded as {coded[0]} but named {'/'.join(named)}")
    elif len(coded) > 1 and not named:
        problems.append(f"drug codes disagree ({', '.join(coded)})")
    else:
        ingredients = named or coded
    form_text = " ".join(names + fhir.concept_texts((medication or {}).get("form"))
                         + fhir.concept_texts(product.get("form")))[:fhir.FREE_TEXT_READ]
    local_form, dose_form = _dose_form(form_text)
    strength, concentration = _strength(medication, form_text)
    return _Product(names[0] if names else None, tuple(ingredients), tuple(problems), form_text, local_form, dose_form,
                    strength, concentration)


@fhir.cached_by_json
def _coded_product(concept: Mapping[str, Any]) -> _Product:
    """_product of an order that names its drug in its concept alone (no contained Medication)."""
    return _product(concept, None)


def _first_dosage(resource: Mapping[str, Any]) -> dict:
    return next((d for d in fhir.items(resource.get("dosageInstruction")) if isinstance(d, dict)), {})


def _authored(resource: Mapping[str, Any]) -> date | None:
    return fhir.parse_date(resource.get("authoredOn") or resource.get("dateWritten"))


# ---------------------------------------------------------------------------------------------
# The drug


def _medication(resource, problems) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """(the drug concept, the contained Medication if the order references one)."""
    concept = fhir.mapping(resource.get("medicationCodeableConcept"))
    if concept is not None:
        return concept, None
    codeable_reference = fhir.mapping(resource.get("medication"))  # R5 CodeableReference
    if codeable_reference is not None and fhir.mapping(codeable_reference.get("concept")):
        return codeable_reference["concept"], None
    reference = fhir.mapping(resource.get("medicationReference"))
    if reference is None:
        return None, None
    target = fhir.text(reference.get("reference")) or ""
    if target.startswith("#"):
        for contained in fhir.items(resource.get("contained")):
            if isinstance(contained, dict) and contained.get("id") == target[1:]:
                code = fhir.mapping(contained.get("code"))
                return code or {}, contained
    display = fhir.text(reference.get("display"))
    if display:
        return {"text": display}, None
    problems.append(f"medication reference {target[:60]!r} is not contained in the order: drug unknown")
    return {}, None


def _strength(medication, form_text: str) -> tuple[float | None, float | None]:
    """(mg per tablet/unit, mg per mL) of the product: from a contained Medication's single
    ingredient strength, else from the drug name."""
    if medication is not None:
        ingredients = [i for i in fhir.items(medication.get("ingredient")) + fhir.items(
            (fhir.mapping(medication.get("product")) or {}).get("ingredient")) if isinstance(i, dict)]
        if len(ingredients) == 1:
            ratio = fhir.mapping(ingredients[0].get("strength") or ingredients[0].get("amount"))
            if ratio is not None:
                numerator = fhir.mapping(ratio.get("numerator")) or {}
                denominator = fhir.mapping(ratio.get("denominator")) or {}
                mg = _mass_mg(numerator)
                per = fhir.number(denominator.get("value"))
                per_unit = _unit_of(denominator)
                if mg is not None and per and not _unit_conflict(denominator):
                    if per_unit in _VOLUME_ML:
                        return None, mg / (per * _VOLUME_ML[per_unit])
                    return mg / per, None
    return _named_strength(form_text)


@fhir.cached_by_text
def _named_strength(form_text: str) -> tuple[float | None, float | None]:
    """(mg per unit, mg per mL) from exactly one strength in the drug name."""
    concentrations = _CONCENTRATION.findall(form_text)
    if len(concentrations) == 1:
        value, unit, per_ml = concentrations[0]
        return None, float(value) * _MASS_MG[unit.lower()] / float(per_ml or 1)
    strengths = _STRENGTH.findall(form_text)
    if len({(v, u.lower()) for v, u in strengths}) == 1:
        value, unit = strengths[0]
        return float(value) * _MASS_MG[unit.lower().replace("µg", "ug")], None
    return None, None


@fhir.cached_by_text
def _dose_form(text: str) -> tuple[bool, str | None]:
    """(is a local form, systemic dose form) from the drug name and Medication.form."""
    words = text.lower()
    if _LOCAL_FORMS.search(words):
        return True, None
    for form, pattern in _FORMS:
        if pattern.search(words):
            return False, form
    return False, None


@fhir.cached_by_json
def _route(concept: Any) -> tuple[str | None, str | None, bool, tuple[str, ...]]:
    """(iv/oral, route as ordered when neither, is a local route, the problem reading it).  An
    intramuscular, subcutaneous or feeding-tube route is named so ("intramuscular", "subcutaneous",
    "enteral tube"), whatever words it came in; "by mouth or tube" is oral, named "enteral tube"."""
    for system, code, _ in fhir.codings(concept):
        if system in codes.SNOMED and code in codes.SNOMED_ROUTES:
            route = codes.SNOMED_ROUTES[code]
            # Coded oral, with words that add a tube ({oral code, text "PO/NG"}): oral, tube named.
            words = (fhir.normalise_words(t.lower()) for t in fhir.concept_texts(concept))
            tube = route == "oral" and any(_ENTERAL_TUBE.search(w) for w in words)
            return route, "enteral tube" if tube else None, False, ()
        if system in codes.SNOMED and code in codes.SNOMED_OTHER_INJECTION_ROUTES:
            return None, codes.SNOMED_OTHER_INJECTION_ROUTES[code], False, ()
    for name in fhir.concept_texts(concept):
        words = fhir.normalise_words(name.lower())
        for kind, pattern in _ROUTE_WORDS:
            if pattern.search(words):
                if kind == "local":
                    return None, name[:60], True, ()
                if kind == "oral" and _ENTERAL_TUBE.search(words):
                    return "oral", "enteral tube", False, ()  # "PO/NG": by mouth or through a feeding tube
                if kind in ("iv", "oral"):
                    return kind, None, False, ()
                return None, kind, False, ()
        return None, name[:60], False, (f"route {name[:40]!r} is neither IV nor oral",)
    return None, None, False, ()


def _bolus(dosage: Mapping[str, Any]) -> str | None:
    """The words of the method or route (coded or not), or of the instruction's text ("175 mg IV push
    every 12 hours"), that order an IV push or bolus, quoted."""
    method, route, text = dosage.get("method"), dosage.get("route"), fhir.text(dosage.get("text"))
    return (_bolus_words(method) if method is not None else None) or (
        _bolus_words(route) if route is not None else None) or (_bolus_in_text(text) if text else None)


@fhir.cached_by_json  # the same few routes and methods on every order
def _bolus_words(concept: Any) -> str | None:
    return next((name[:60] for name in fhir.concept_texts(concept) if _says_bolus(name)), None)


@fhir.cached_by_text
def _says_bolus(name: str) -> bool:
    """A method or route that names a push or bolus (not one it negates): "IV push", "Bolus"."""
    # Each match looks back over the words before it: a bounded text keeps that linear.
    words = fhir.normalise_words(name[:fhir.FREE_TEXT_READ])
    return any(not _BOLUS_NEGATED.search(words[:m.start()]) for m in _BOLUS_WORDS.finditer(words))


@fhir.cached_by_text
def _bolus_in_text(text: str) -> str | None:
    """The words around the first injection by push or bolus an instruction's text orders, up to 60 characters."""
    # The same length as the text: a position in one is in the other.
    words = _IV_DOTTED.sub("iv  ", fhir.normalise_words(text[:fhir.FREE_TEXT_READ]).replace("(", " ").replace(")", " "))
    begin = 0
    for end in [*(m.end() for m in _CLAUSE_END.finditer(words)), len(words)]:
        clause = words[begin:end]
        for m in _BOLUS_IN_TEXT.finditer(clause):
            before, after = clause[:m.start()], clause[m.end():]
            reach = _negation_reach(before)
            if _NEGATION_WORDS.intersection(re.findall(r"[a-z]+", reach)[-_NEGATION_REACH:]) or _NEGATED_AFTER.search(after):
                continue
            # A flush or a fluid named since the drug's last dose is what is pushed; not the drug's own diluent.
            doses = list(_DRUG_DOSE.finditer(before))
            since_dose = _DILUENT.sub(" ", before[doses[-1].end():]) if doses else before
            if _FLUID_OR_FLUSH.search(since_dose):
                continue
            return _excerpt(text, begin + m.start())
        begin = end
    return None


def _negation_reach(before: str) -> str:
    """The words before a push that a negation in them reaches: back over commas only through a list of ways not
    to give it ("not for IM, SC, or by IV push", "avoid rapid infusion, IV push"), each phrase made of _LIST_WORDS;
    not from a phrase of its own ("do not dilute, IV push", "if no pump is free, give 175 mg IV push")."""
    parts = before.split(",")
    reach = [parts[-1]]
    for part in reversed(parts[:-1]):  # each phrase looked at once, no further back than a negation reaches
        if not (set(re.findall(r"[a-z]+", reach[-1])) | set(re.findall(r"[a-z]+", part))) <= _LIST_WORDS:
            break
        reach.append(part)
        if sum(len(p.split()) for p in reach) > _NEGATION_REACH:
            break
    return ",".join(reversed(reach))


def _excerpt(text: str, at: int, width: int = 60) -> str:
    """Up to `width` characters of `text` around position `at`, an ellipsis where it is cut."""
    if len(text) <= width:
        return text
    begin = max(0, min(at - width // 2, len(text) - width))
    return ("…" if begin else "") + text[begin:begin + width].strip() + ("…" if begin + width < len(text) else "")


def _infusion_minutes(repeat: Mapping[str, Any]) -> float | None:
    """How long each administration lasts (timing.repeat.duration, in s, min or h), in minutes.

    Not a dose input: when it is missing or in another unit, nothing is said (the infusion-time
    check is only made on a stated time)."""
    value = fhir.number(repeat.get("duration"))
    unit = fhir.text(repeat.get("durationUnit") or repeat.get("durationUnits"))  # DSTU2: durationUnits
    if value is None or value <= 0 or unit not in ("s", "min", "h"):
        return None
    return value * _HOURS_PER_UNIT[unit] * 60


# ---------------------------------------------------------------------------------------------
# Dose


def _normalised_unit(value: Any) -> str | None:
    value = fhir.text(value)
    return value.lower().replace("{", "").replace("}", "").replace(" ", "").replace("µ", "u") if value else None


def _unit_of(quantity: Mapping[str, Any]) -> str | None:
    """A dose unit, normalised: UCUM code first, else the unit string; annotations unbraced."""
    return _normalised_unit(quantity.get("code")) or _normalised_unit(quantity.get("unit"))


def _unit_conflict(quantity: Mapping[str, Any]) -> str | None:
    """Words for a unit string and code that mean different units (units.read_unit's rule, with the
    dose units read here); None when they agree, or when either is missing or not such a unit."""
    if not units.quantity_unit(quantity, lambda spelling: _UNIT_MEANING.get(_normalised_unit(spelling) or "")).conflict:
        return None
    return f"unit {fhir.text(quantity.get('unit'))[:20]!r} and code {fhir.text(quantity.get('code'))[:20]!r} disagree"


def _mass_mg(quantity: Mapping[str, Any]) -> float | None:
    value = fhir.number(quantity.get("value"))
    unit = _unit_of(quantity)
    if value is None or unit not in _MASS_MG or _unit_conflict(quantity):
        return None
    return value * _MASS_MG[unit]


# Plausible amounts per administration; beyond them an order is unreadable, never a dose to check.
# (The largest labelled CMV dose is foscarnet 120 mg/kg: about 18 g for a 150 kg adult.)
_DOSE_LIMITS = {"dose_mg": 50_000.0, "mg_per_kg": 500.0, "unit_count": 50.0}


def _dose(dosage, strength, concentration, dose_form, weight: DosingWeight | None, problems) -> dict[str, Any]:
    dose = _read_dose(dosage, strength, concentration, dose_form, weight, problems)
    for key, limit in _DOSE_LIMITS.items():
        value = dose.get(key)
        if value is not None and not (0 < value <= limit):
            shown = f"{value:.3g}" if math.isfinite(value) else "too large to represent"
            problems.append(f"ordered dose is implausible ({key.replace('_', ' ')} {shown}, limit {limit:g})")
            return {}
    return dose


def _read_dose(dosage, strength, concentration, dose_form, weight: DosingWeight | None, problems) -> dict[str, Any]:
    rates = [r for r in fhir.items(dosage.get("doseAndRate")) if isinstance(r, dict)]
    holder = rates[0] if rates else dosage  # R4 doseAndRate[0]; DSTU2/STU3 on the dosage itself
    quantity = fhir.mapping(holder.get("doseQuantity"))
    if quantity is None:
        dose_range = fhir.mapping(holder.get("doseRange"))
        if dose_range is not None:
            low = fhir.number((fhir.mapping(dose_range.get("low")) or {}).get("value"))
            high = fhir.number((fhir.mapping(dose_range.get("high")) or {}).get("value"))
            problems.append(f"dose is a range ({low:g} to {high:g}), not a single dose" if low is not None
                            and high is not None else "dose is a range, not a single dose")
        elif dosage:
            text = fhir.text(dosage.get("text"))
            problems.append(f"dose only as text: {text[:60]!r}" if text else "no dose")
        else:
            problems.append("no dosage instructions")
        return {}
    value = fhir.number(quantity.get("value"))
    unit = _unit_of(quantity)
    if value is None or value <= 0:
        problems.append("dose value missing or not positive")
        return {}
    if unit is None:
        problems.append(f"dose {value:g} has no unit")
        return {}
    conflict = _unit_conflict(quantity)
    if conflict:
        problems.append(f"dose {value:g}: {conflict}: dose not read")
        return {}
    if unit in _MASS_MG:
        mg = value * _MASS_MG[unit]
        return {"dose_mg": mg, "basis": f"{value:g} {unit}" if unit == "mg" else f"{value:g} {unit} = {mg:g} mg"}
    if unit in _PER_KG:
        if weight is None:
            problems.append(f"dose ordered as {value:g} mg/kg but no current weight: the mg dose is unknown")
            return {"mg_per_kg": value}
        mg = value * weight.kg
        when = weight.weight.date_words
        return {
            "mg_per_kg": value,
            "dose_mg": mg,
            "basis": f"{value:g} mg/kg x {round(weight.kg, 2):g} kg ({weight.basis} weight, {when}) = {mg:g} mg",
        }
    if unit in _COUNT_UNITS:
        form = _COUNT_UNITS[unit] or dose_form or "unit"
        if strength is None:
            problems.append(f"dose is {value:g} {unit} but the strength of one {form} is unknown")
            return {"unit_count": value, "form": _COUNT_UNITS[unit]}
        mg = value * strength
        basis = f"{value:g} x {strength:g} mg {form}"
        return {"dose_mg": mg, "unit_count": value, "basis": basis, "form": _COUNT_UNITS[unit]}
    if unit in _VOLUME_ML:
        ml = value * _VOLUME_ML[unit]
        if concentration is None:
            problems.append(f"dose is {value:g} {unit} but the concentration (mg/mL) is unknown")
            return {}
        mg = ml * concentration
        return {"dose_mg": mg, "basis": f"{ml:g} mL x {concentration:g} mg/mL"}
    if unit in _PER_KG_DAY:
        problems.append(f"dose ordered as {value:g} {unit} (a daily amount), not a dose per administration")
        return {}
    problems.append(f"dose unit {unit[:20]!r} is not a mass")
    return {}


# ---------------------------------------------------------------------------------------------
# Timing


# Plausible hours between doses: from every 15 minutes to every 5 weeks (cidofovir is every 2 weeks).
_INTERVAL_HOURS = (0.25, 24.0 * 35)


def _interval(timing: Any, problems: list[str]) -> tuple[float | None, str | None]:
    """(hours between doses, how it was read); an implausible interval is a problem, not a value."""
    hours, basis = _read_interval(timing, problems)
    if hours is not None and not (_INTERVAL_HOURS[0] <= hours <= _INTERVAL_HOURS[1]):
        problems.append("dosing frequency is implausible (not between every 15 minutes and every 5 weeks)")
        return None, None
    return hours, basis


def _read_interval(timing: Any, problems: list[str]) -> tuple[float | None, str | None]:
    timing = fhir.mapping(timing)
    if timing is None:
        problems.append("no dosing frequency")
        return None, None
    repeat = fhir.mapping(timing.get("repeat")) or {}
    frequency = fhir.number(repeat.get("frequency"))
    period = fhir.number(repeat.get("period"))
    unit = fhir.text(repeat.get("periodUnit") or repeat.get("periodUnits"))  # DSTU2: periodUnits
    if period is not None or frequency is not None:
        if period is None or period <= 0 or unit not in _HOURS_PER_UNIT or (frequency is not None and frequency <= 0):
            problems.append("timing.repeat has no usable period")
            return None, None
        if _is_range(repeat, "frequency") or _is_range(repeat, "period"):
            problems.append("timing.repeat gives a range of intervals: not checked")
            return None, None
        frequency = frequency or 1.0
        hours = period * _HOURS_PER_UNIT[unit] / frequency
        return hours, f"{frequency:g} per {period:g} {unit}"
    times = _strings(repeat.get("timeOfDay")) or _strings(repeat.get("when"))
    days = _strings(repeat.get("dayOfWeek"))
    if times or days:
        per_day = len(set(times)) or 1
        if days:
            count = len(set(days)) * per_day
            return 168.0 / count, f"{count} per week ({', '.join(days)[:40]})"
        return 24.0 / per_day, f"{per_day} per day (times of day)"
    code = fhir.mapping(timing.get("code"))
    for _, value, _ in fhir.codings(code):
        key = value.upper().replace(" ", "") if value else ""
        if key in TIMING_CODES:
            return float(TIMING_CODES[key]), value
        hours = re.fullmatch(r"Q(\d+)H", key)
        if hours and int(hours.group(1)) > 0:
            return float(hours.group(1)), value
    return _interval_in_words(fhir.concept_texts(code), problems)


def _interval_in_words(names: list[str], problems: list[str]) -> tuple[float | None, str | None]:
    """The one interval the timing's words name; words naming several, a range or a schedule in
    phases are a problem."""
    found: dict[float, str] = {}  # hours -> the words that say so
    for name in names:
        key = name.upper().replace(" ", "")
        if key in TIMING_CODES:
            found.setdefault(float(TIMING_CODES[key]), name)
            continue
        words = fhir.normalise_words(name.lower())
        for pattern, why in _NOT_ONE_INTERVAL:
            if pattern.search(words):
                problems.append(f"dosing frequency {name[:40]!r} {why}: not checked")
                return None, None
        for hours in _hours_in_words(words):
            found.setdefault(hours, name[:40])
    if len(found) > 1:
        problems.append(f"dosing frequency names {len(found)} different intervals: not checked")
        return None, None
    if not found:
        problems.append("dosing frequency could not be read")
        return None, None
    return next(iter(found.items()))


@fhir.cached_by_text
def _hours_in_words(words: str) -> frozenset[float]:
    """Every interval normalised frequency words name, each run of words read by one pattern only; in
    the first fhir.FREE_TEXT_READ characters (each match is checked against those before it)."""
    words = words[:fhir.FREE_TEXT_READ]
    read: list[tuple[int, int]] = []
    hours: set[float] = set()
    for pattern, hours_of in _TIMING_WORDS:
        for match in pattern.finditer(words):
            if any(match.start() < end and start < match.end() for start, end in read):
                continue
            read.append(match.span())
            if hours_of(match) > 0:
                hours.add(hours_of(match))
    return frozenset(hours)


def _is_range(repeat: Mapping[str, Any], key: str) -> bool:
    """frequencyMax/periodMax given, other than the value itself ("every 8 to 12 hours")."""
    maximum = repeat.get(key + "Max")
    return maximum is not None and fhir.number(maximum) != fhir.number(repeat.get(key))


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------
# Dates


def _dates(resource, dosage, problems: list[str]) -> tuple[date | None, date | None, float | None]:
    """(start, end, planned duration in days)."""
    repeat = _repeat(dosage)
    bound_start, bound_end = _bounds(repeat)
    start, end, contradiction = _start_end(resource, bound_start, bound_end)
    if contradiction:
        stated, ended = contradiction
        problems.append(f"the order ends ({ended.isoformat()}) before it starts ({stated.isoformat()}): "
                        "neither date is used")
    duration = _duration_days(fhir.mapping(repeat.get("boundsDuration")))
    if duration is None and bound_start and bound_end and bound_end >= bound_start:
        # A Period's end is inclusive: 1 to 21 November is 21 days.
        duration = float((bound_end - bound_start).days + 1)
    if duration is None:
        duration = _supply_days(fhir.mapping(resource.get("dispenseRequest")) or {})
    return start, end, duration


def _supply_days(dispense: Mapping[str, Any]) -> float | None:
    """The expected supply duration as the course length, only when no refill is allowed: with
    refills the course is longer than one supply, and by how much is not said (not every refill
    is taken)."""
    repeats = dispense.get("numberOfRepeatsAllowed")
    if repeats is not None and fhir.number(repeats) != 0:
        return None
    return _duration_days(fhir.mapping(dispense.get("expectedSupplyDuration")))


def _repeat(dosage: Mapping[str, Any]) -> Mapping[str, Any]:
    return fhir.mapping((fhir.mapping(dosage.get("timing")) or {}).get("repeat")) or {}


def _bounds(repeat: Mapping[str, Any]) -> tuple[date | None, date | None]:
    """The dosage's boundsPeriod (start, end)."""
    bounds = fhir.mapping(repeat.get("boundsPeriod")) or {}
    return fhir.parse_date(bounds.get("start")), fhir.parse_date(bounds.get("end"))


def _start_end(
    resource: Mapping[str, Any], bound_start: date | None, bound_end: date | None
) -> tuple[date | None, date | None, tuple[date, date] | None]:
    """(start, end, contradiction): the dosage bounds, else when the order was written and when it is
    recorded to have ended (DSTU2 dateEnded, or the end of the dispense validity period).

    An end before the start: written after the end it records (a course entered afterwards), the order's
    start is unknown; with a stated start, the dates contradict each other and neither is used (which
    one is wrong cannot be told): contradiction = (stated start, end)."""
    dispense = fhir.mapping(resource.get("dispenseRequest")) or {}
    validity = fhir.mapping(dispense.get("validityPeriod")) or {}
    end = bound_end or fhir.parse_date(resource.get("dateEnded")) or fhir.parse_date(validity.get("end"))
    start = bound_start or _authored(resource)
    if start is None or end is None or end >= start:
        return start, end, None
    if bound_start is None:
        return None, end, None
    return None, None, (start, end)


def _duration_days(duration: Mapping[str, Any] | None) -> float | None:
    if duration is None:
        return None
    value = fhir.number(duration.get("value"))
    unit = fhir.text(duration.get("code")) or fhir.text(duration.get("unit"))
    factor = _DAYS_PER_UNIT.get(unit.lower()) if unit else None
    if value is None or value < 0 or factor is None:
        return None
    return value * factor
