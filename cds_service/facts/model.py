"""Typed clinical facts: what the treatment logic may rely on.

These dataclasses are the contract between the facts layer (which builds them from FHIR) and the
clinical layer (which reads them).  Every value carries its unit, date and source so a card can show
the inputs it used.  Anything that could not be read is absent (None) and explained by a
`DataQualityIssue`; nothing here is ever a default standing in for a missing value.
"""

from __future__ import annotations

from dataclasses import field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Callable, Literal, Mapping, TypeVar

from cds_service.frozen import frozen

T = TypeVar("T")


def display_number(value: float, beside: float | None = None) -> str:
    """Two decimals below 100 (converted units give long fractions), whole numbers above; more where fewer
    would put the value on the other side of a limit it is compared with (`beside`): 7.99 g/dL against 8 is
    "7.99", never "8", and 1.5045 mg/dL against 1.5 is "1.504"."""
    decimals = decimals_beside(value, 2 if abs(value) < 100 else 0, beside)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def decimals_beside(value: float, decimals: int, beside: float | None) -> int:
    """`decimals`, or more (up to 6) until the rounded value lies on the same side of `beside` as the value."""
    if beside is None or value == beside:
        return decimals
    while decimals < 6 and (round(value, decimals) - beside) * (value - beside) <= 0:
        decimals += 1
    return decimals


# ---------------------------------------------------------------------------------------------
# Patient


Sex = Literal["female", "male", "other", "unknown"]


@frozen
class PatientFacts:
    id: str | None
    birth_date: date | None
    age_years: int | None  # whole years on the evaluation date
    sex: Sex


# ---------------------------------------------------------------------------------------------
# Laboratory values and vital signs

# Analyte keys and their canonical unit (UCUM).  Values are converted to this unit explicitly.
ANALYTE_UNITS: Mapping[str, str] = {
    "creatinine": "mg/dL",
    "crcl_reported": "mL/min",  # Cockcroft-Gault CrCl as reported by the lab (LOINC 35591-7)
    "egfr": "mL/min/{1.73_m2}",
    "anc": "/uL",
    "wbc": "/uL",
    "platelets": "/uL",
    "hemoglobin": "g/dL",
    "potassium": "mmol/L",
    "magnesium": "mg/dL",
    "calcium": "mg/dL",
    "ionized_calcium": "mmol/L",
    "phosphate": "mg/dL",
    "urine_protein": "mg/dL",
    "urine_protein_dipstick": "{grade}",  # negative 0, trace 0.5, 1+ 1, 2+ 2, 3+ 3, 4+ 4
    "weight": "kg",
    "height": "cm",
}


class Dated:
    """A result's date as cards show it: `effective`, and whether it is the report's issue time (no collection
    time given: no effective[x]), which may be later than the sample."""

    effective: datetime | None
    dated_by_report: bool

    @property
    def date_words(self) -> str:
        """'2026-11-20', 'reported 2026-11-20, collection time not given', or 'undated'."""
        if self.effective is None:
            return "undated"
        day = self.effective.date().isoformat()
        return f"reported {day}, collection time not given" if self.dated_by_report else day


@frozen
class Measurement(Dated):
    analyte: str  # a key of ANALYTE_UNITS
    value: float  # in the canonical unit
    unit: str  # canonical unit
    effective: datetime | None  # timezone-aware; None only if the observation has no date
    source_id: str  # "Observation/123"
    reported: str  # as the source reported it, e.g. "132.6 umol/L"
    comparator: str | None = None  # "<", "<=", ">=", ">" when the value is a bound
    interpretation: str | None = None  # normalised HL7 code: "L", "LL", "H", "HH", "N", "A"
    reference_low: float | None = None  # in the canonical unit, when the observation gives it
    reference_high: float | None = None
    dated_by_report: bool = False  # Dated: no collection time given, `effective` is the issue time

    @property
    def effective_date(self) -> date | None:
        return self.effective.date() if self.effective else None

    def age_days(self, now: datetime) -> float | None:
        if self.effective is None:
            return None
        return (now - self.effective).total_seconds() / 86400.0

    def describe(self, beside: float | None = None) -> str:
        """'1.8 mg/dL (2026-11-20)' - how a card shows an input (`beside`: a limit it is compared with)."""
        return f"{self.comparator or ''}{display_number(self.value, beside)} {self.unit} ({self.date_words})"


# Viral load scales are kept apart: IU/mL and copies/mL are not interconvertible without the assay.
ViralLoadScale = Literal["IU/mL", "copies/mL"]


@frozen
class ViralLoadResult(Dated):
    effective: datetime | None
    source_id: str
    scale: ViralLoadScale | None  # None when detected/not-detected is all the result says
    value: float | None  # linear value on `scale`; None when not quantified
    detected: bool  # False for "not detected" / below the limit of detection
    below_quantification: bool = False  # detected (or unknown) but below the lower limit ("<137")
    log10: float | None = None  # log10 of `value`, or as reported when the lab reports log10
    reported: str = ""
    code: str = ""  # LOINC code
    limit: float | None = None  # the assay limit of a bound result ("<137 IU/mL" -> 137), linear
    comparator: str | None = None  # "<", "<=", ">", ">=" when the result is a bound
    dated_by_report: bool = False  # Dated: no collection time given, `effective` is the issue time

    @property
    def negative(self) -> bool:
        """Found no CMV: not detected, and not a bound below quantification that does not say (it may have been)."""
        return not self.detected and not self.below_quantification

    def describe(self) -> str:
        return f"{self.reported or ('detected' if self.detected else 'not detected')} ({self.date_words})"


@frozen
class ViralLoadSeries:
    """CMV PCR results, newest first."""

    results: tuple[ViralLoadResult, ...] = ()
    # When dated PCR results that could not be used were taken (unreadable, or of one time and disagreeing;
    # not a time a used result speaks for), newest first: a rule that reads results "in a row" cannot
    # count across them.
    unread: tuple[datetime, ...] = ()

    def read_through(self, oldest: datetime) -> bool:
        """Whether every PCR taken from `oldest` on was read (used): results from there on are all there are."""
        return not any(t >= oldest for t in self.unread)

    @property
    def latest(self) -> ViralLoadResult | None:
        return self.results[0] if self.results else None

    def on_scale(self, scale: ViralLoadScale) -> tuple[ViralLoadResult, ...]:
        return tuple(r for r in self.results if r.scale == scale)

    def __bool__(self) -> bool:
        return bool(self.results)


@frozen
class Pp65Result(Dated):
    effective: datetime | None
    source_id: str
    positive: bool
    reported: str = ""
    dated_by_report: bool = False  # Dated: no collection time given, `effective` is the issue time


@frozen
class LabFacts:
    """Usable measurements per analyte, newest first: only the newest is read (labs.py,
    MAX_RESULTS_PER_ANALYTE), as no rule looks further back, except creatinine's short history on a
    cidofovir course (labs.CREATININE_HISTORY_RESULTS: the rise from the value before the course).
    Unusable ones are DataQualityIssues."""

    by_analyte: Mapping[str, tuple[Measurement, ...]] = field(default_factory=dict)
    # Single-value analytes whose newest result could not be used (it hides the older ones): its time, None
    # when undated (it may be the newest) - so a rule can tell a current unusable value from an old one.
    unusable_at: Mapping[str, datetime | None] = field(default_factory=dict)
    # Of those, the analytes whose newest result is a dated preliminary one (a test resulting): its time.
    preliminary_at: Mapping[str, datetime] = field(default_factory=dict)

    def latest(self, analyte: str) -> Measurement | None:
        values = self.by_analyte.get(analyte)
        return values[0] if values else None

    def series(self, analyte: str) -> tuple[Measurement, ...]:
        return self.by_analyte.get(analyte, ())


# ---------------------------------------------------------------------------------------------
# Renal function


@frozen
class RenalFunction:
    """Creatinine clearance and exactly how it was obtained."""

    crcl_ml_min: float | None  # None without a current weight: then only the CrCl per kg is known
    crcl_ml_min_per_kg: float | None  # foscarnet's unit; None when it cannot be derived
    method: Literal["cockcroft-gault", "reported"]
    creatinine: Measurement | None  # the creatinine used (cockcroft-gault)
    creatinine_mg_dl_used: float | None  # after any floor policy, to the digits the formula takes it with
    weight: Measurement | None  # the weight measurement used
    weight_kg_used: float | None  # the weight put in the formula (actual, ideal or adjusted)
    weight_basis: str | None  # "actual", "ideal", "adjusted"
    age_years: int | None
    sex_factor: float | None  # 0.85 female, 1.0 male
    assumptions: tuple[str, ...] = ()  # e.g. "sex unknown: female factor 0.85 applied (lower CrCl)"
    calculation: str = ""  # "(140 - 64) x 70 kg / (72 x 1.80 mg/dL) = 41 mL/min"
    reported: Measurement | None = None  # the reported CrCl observation (method "reported")
    # Lines a card shows as inputs: "Creatinine 1.8 mg/dL (2026-11-20, 6 days old)", "Age 64 years".
    inputs: tuple[str, ...] = ()
    height: Measurement | None = None  # the height used for ideal body weight, if any
    ideal_weight_kg: float | None = None  # Devine IBW, when a height was available
    creatinine_floored: bool = False  # the policy's creatinine floor replaced the value (or a bound at or below it)


@frozen
class DosingWeight:
    """The weight mg/kg doses are computed from, under the dosing-weight policy."""

    kg: float
    basis: Literal["actual", "ideal", "adjusted"]
    weight: Measurement  # the measured weight it derives from
    height: Measurement | None = None  # needed for ideal/adjusted
    calculation: str = ""  # "actual weight 70 kg (2026-11-20)" or "IBW 61.6 kg + 0.4 x (110 - 61.6)"


# ---------------------------------------------------------------------------------------------
# Conditions

Population = Literal["sot", "hsct", "hiv", "ibd"]
CmvDiseaseSite = Literal["retinitis", "gi", "pneumonitis", "hepatitis", "cns", "other"]


@frozen
class ConditionEvidence:
    label: str  # what it established, e.g. "kidney transplant", "CMV colitis"
    source_id: str  # "Condition/7"
    matched_by: str  # "ICD-10-CM Z94.0", "SNOMED CT 22455005", "text 'cmv colitis'"
    onset: date | None = None


# Resistance (clinical reference section 9, G: Chemaly 2019, updated Ljungman 2024): the genes whose
# mutations confer resistance, and the anti-CMV drugs each can affect.
RESISTANCE_GENES: Mapping[str, tuple[str, ...]] = {
    "UL97": ("ganciclovir", "maribavir"),
    "UL54": ("ganciclovir", "cidofovir", "foscarnet"),
    "UL56": ("letermovir",),
    "UL89": ("letermovir",),
    "UL51": ("letermovir",),
}

# The genes whose documented mutation documents resistance to a drug (others only may affect it):
# UL97 and UL54 for ganciclovir (and so valganciclovir); for another drug, a gene that affects it
# alone (UL56/UL89/UL51: letermovir).
CONFERRING_GENES: Mapping[str, frozenset[str]] = {
    drug: frozenset(
        gene for gene, drugs in RESISTANCE_GENES.items() if (drug in drugs if drug == "ganciclovir" else drugs == (drug,))
    )
    for drug in dict.fromkeys(d for drugs in RESISTANCE_GENES.values() for d in drugs)
}

# Renal replacement therapy on record -> how cards name it (and the label of its evidence).
RENAL_REPLACEMENT_LABELS = {
    "dialysis": "dialysis", "peritoneal": "peritoneal dialysis", "crrt": "continuous renal replacement therapy",
}


@frozen
class ConditionFacts:
    populations: frozenset[str] = frozenset()  # Population values
    transplant_organs: frozenset[str] = frozenset()  # kidney, liver, heart, lung, pancreas, intestine
    # organ -> the transplant's date: the newest onset of its transplant conditions (a complication's,
    # coded T86, is not it); organs without one are left out.
    transplant_dates: Mapping[str, date] = field(default_factory=dict)
    hsct_date: date | None = None
    ibd_types: frozenset[str] = frozenset()  # "ulcerative-colitis", "crohns"
    chronic_gvhd: bool = False
    acute_severe_uc: bool = False  # a current acute severe flare of ulcerative colitis
    # ... not responding to corticosteroids, as a condition about the UC or its flare says.
    steroid_resistant_asuc: bool = False
    renal_replacement: str | None = None  # "dialysis" (hemodialysis), "peritoneal" or "crrt": RENAL_REPLACEMENT_LABELS
    cmv_disease_sites: frozenset[str] = frozenset()  # CmvDiseaseSite values
    cmv_disease_onset: date | None = None  # the newest onset of the CMV disease conditions on record
    cmv_infection: bool = False  # CMV infection/viraemia coded without end-organ disease
    # A CMV colitis condition whose name or note says a biopsy (histology, IHC) confirmed it.
    colitis_biopsy_confirmed: bool = False
    ganciclovir_intolerance: bool = False  # documented (AllergyIntolerance or condition)
    allergies: frozenset[str] = frozenset()  # "probenecid", "sulfa": the allergies cidofovir's label names
    resistance_genes: frozenset[str] = frozenset()  # genes with a documented mutation: "UL97", "UL54", ...
    # Of those, the genes documented only in records that name a drug they affect resistant ("maribavir-
    # resistant CMV (UL97 T409M)"): the record says what the mutation does, so CONFERRING_GENES is not applied.
    attributed_genes: frozenset[str] = frozenset()
    # Anti-CMV drugs documented resistant in words; valganciclovir (the prodrug) as "ganciclovir".
    resistant_drugs: frozenset[str] = frozenset()
    evidence: tuple[ConditionEvidence, ...] = ()
    # Derived, never passed: resistant_to("ganciclovir").  A field rather than a property so that the
    # facts' JSON (cds-service evaluate) still shows it.
    ganciclovir_resistance: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ganciclovir_resistance", self.resistant_to("ganciclovir"))

    def resistant_to(self, drug: str) -> bool:
        """Documented resistant: named so in words, or a mutation in a gene that confers resistance to
        it (conferring_genes).  `drug` as the record names it: valganciclovir's is "ganciclovir"."""
        return drug in self.resistant_drugs or bool(self.conferring_genes(drug))

    def conferring_genes(self, drug: str) -> frozenset[str]:
        """Documented mutations that document resistance to `drug` (CONFERRING_GENES), except those whose
        record names the drugs they affect."""
        return (self.resistance_genes - self.attributed_genes) & CONFERRING_GENES.get(drug, frozenset())

    @property
    def cmv_disease(self) -> bool:
        return bool(self.cmv_disease_sites)

    @property
    def hiv_retinitis(self) -> bool:
        """CMV retinitis in HIV: its own regimen (21 days of induction, then maintenance)."""
        return "hiv" in self.populations and "retinitis" in self.cmv_disease_sites

    @property
    def hiv_retinitis_only(self) -> bool:
        """HIV with CMV retinitis and no other CMV disease: the retinitis regimen (oral) is the whole plan."""
        return self.hiv_retinitis and self.cmv_disease_sites == frozenset({"retinitis"})


# ---------------------------------------------------------------------------------------------
# Medication orders


@frozen
class MedicationOrder:
    id: str  # "MedicationRequest/123" (or "MedicationOrder/…" for DSTU2)
    ingredient: str | None  # lower-case generic name, e.g. "valganciclovir"; None if unknown
    drug_text: str | None  # the name as ordered, e.g. "valganciclovir 450 MG Oral Tablet"
    classes: frozenset[str] = frozenset()  # drug classes, named in facts/drugs.py (ANTI_CMV, NEPHROTOXIN ...)
    is_draft: bool = False
    status: str | None = None
    intent: str | None = None
    # Dose per administration in mg, and how it was derived (shown in cards).
    dose_mg: float | None = None
    dose_basis: str | None = None  # "2 x 450 mg tablet", "5 mg/kg x 70 kg (2026-11-20)", "900 mg"
    mg_per_kg: float | None = None  # when ordered per kg
    unit_count: float | None = None  # when ordered as a count of tablets/capsules
    unit_strength_mg: float | None = None  # strength of one unit, from the product
    dose_form: str | None = None  # "tablet", "capsule", "solution", "injection"
    interval_hours: float | None = None  # hours between doses
    timing_basis: str | None = None  # "2 per 1 d", "Q12H"
    route: Literal["iv", "oral"] | None = None
    start: date | None = None
    end: date | None = None
    duration_days: float | None = None  # planned course length when the order states one
    problems: tuple[str, ...] = ()  # what could not be read ("dose unit 'puff' not a mass")
    # The route when it is neither IV nor oral: "intramuscular", "subcutaneous", "enteral tube", else as
    # ordered ("intravitreal"); also "enteral tube" with route "oral" for "by mouth or tube" ("PO/NG").
    route_text: str | None = None
    bolus_text: str | None = None  # the route's or method's words when they order an IV push or bolus ("IV push")
    infusion_minutes: float | None = None  # how long each dose runs (timing.repeat.duration), when stated
    # False for local routes/forms (ophthalmic, topical, inhaled, intravitreal): such an order carries
    # no drug classes (an eye gel is not systemic ganciclovir, nor a tacrolimus ointment an immunosuppressant).
    systemic: bool = True
    # The order as received, so a suggestion can update it keeping its id and medication concept.
    resource: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Active on record: active or on hold, or with no status (it may be)."""
        return self.status in ("active", "on-hold", None)

    def is_(self, cls: str) -> bool:
        return cls in self.classes

    def describe(self) -> str:
        """'valganciclovir 900 mg every 12 h (oral)'."""
        name = self.ingredient or self.drug_text or "unidentified drug"
        dose = (f"{self.dose_mg:g} mg" if self.dose_mg is not None
                else f"{self.mg_per_kg:g} mg/kg" if self.mg_per_kg is not None else "dose unknown")
        interval = f"every {self.interval_hours:g} h" if self.interval_hours else "interval unknown"
        if (weekly := times_weekly(self.interval_hours)) is not None:
            interval = f"{weekly} times weekly ({interval})"
        route = f" ({self.route.upper() if self.route == 'iv' else self.route})" if self.route else ""
        return f"{name} {dose} {interval}{route}"


def times_weekly(interval_hours: float | None) -> int | None:
    """2 to 6 doses a week that are not a whole number of days apart (every 33.6 h is 5 times weekly, the label's
    '5 days/week'; every 56 h, 3 times weekly), as a prescriber says them; None for any other interval."""
    if not interval_hours or not 28 <= interval_hours <= 84:  # 6 to 2 a week; also NaN (no comparison holds)
        return None
    per_week = 168 / interval_hours
    near = round(per_week)
    whole_days = abs(interval_hours / 24 - round(interval_hours / 24)) < 1e-6
    return near if 2 <= near <= 6 and abs(per_week - near) < 1e-6 and not whole_days else None


# ---------------------------------------------------------------------------------------------
# Data quality


DataQualityKind = Literal[
    "missing",
    "stale",
    "implausible",
    "conflicting",
    "unit-unknown",
    "undated",
    "preliminary",
    "unparseable-order",
    "assumption",
    "out-of-scope",
]


@frozen
class DataQualityIssue:
    kind: str  # a DataQualityKind
    item: str  # "weight", "creatinine", "age", "sex", "height", or an order id
    detail: str  # plain words for the card: "creatinine 2026-10-01 is 56 days old (limit 7)"
    source_id: str | None = None


# ---------------------------------------------------------------------------------------------
# Everything together


@frozen
class ClinicalFacts:
    evaluated_at: datetime  # timezone-aware "now" of the evaluation
    patient: PatientFacts
    labs: LabFacts
    viral_load: ViralLoadSeries
    pp65: tuple[Pp65Result, ...]
    renal: RenalFunction | None
    dosing_weight: DosingWeight | None
    conditions: ConditionFacts
    medications: tuple[MedicationOrder, ...]  # orders on record (active, and recently ended)
    drafts: tuple[MedicationOrder, ...]  # the hook's unsigned orders
    selected: frozenset[str]  # ids of the drafts the clinician selected (order-select)
    quality: tuple[DataQualityIssue, ...] = ()
    skipped_resources: int = 0  # invalid or unusable resources ignored, counted
    pp65_unread: tuple[datetime, ...] = ()  # as ViralLoadSeries.unread, for the pp65 results
    # Results of pure functions of these facts that several rules ask for in one evaluation (a dose
    # assessment), kept for its length (once()).  Not a fact: not compared, not shown, and replace() starts afresh.
    memo: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def once(self, key: tuple, compute: Callable[[], T], *objects: object) -> T:
        """compute() the first time `key` is asked for, its result after.  `objects` (the order, the policy)
        are part of the key by id, and held beside the result, so that no other object takes their ids
        while it is kept."""
        full = (*key, *map(id, objects))
        held = self.memo.get(full)
        if held is None:
            held = self.memo[full] = (objects, compute())
        return held[1]

    @cached_property  # the rules ask for it again and again (the instance's __dict__ holds it: frozen still)
    def active_medications(self) -> tuple[MedicationOrder, ...]:
        return tuple(m for m in self.medications if m.active)

    def issues_for(self, item: str) -> tuple[DataQualityIssue, ...]:
        return tuple(q for q in self.quality if q.item == item)
