"""Dose tables: the labels' renal dose bands and fixed doses, as data.

Every dose and band edge here is from the US product labels as restated in the clinical reference
(shared/knowledge/cmv-clinical-reference.md, sections 3, 4, 6, 7 and 8).  How mg/kg doses are rounded
is local practice, not a label's: a policy setting (policy.Policy.rounding_step_mg).

Band edges.  The labels print integer ranges ("50-69 mL/min"), but creatinine clearance is continuous,
so each band is "at or above its lower edge" (or strictly above it, where the label says ">"):
ganciclovir >= 70 | >= 50 and < 70 | >= 25 and < 50 | >= 10 and < 25 | < 10 (so 69.5 is in 50-69);
valganciclovir >= 60 | >= 40 | >= 25 | >= 10 | < 10; foscarnet (mL/min/kg) > 1.4 | > 1.0 | > 0.8 |
> 0.6 | > 0.5 | >= 0.4 | < 0.4, exactly as its label's table reads.  Bands are listed highest first
and the first band that contains the clearance applies.  The clearance comes rounded to the digits a
card shows it with (facts/renal.py), so the band follows the value the clinician reads.
"""

from __future__ import annotations

from typing import Mapping

from cds_service.facts.units import DIPSTICK_PADS_MG_DL
from cds_service.frozen import frozen

# ---------------------------------------------------------------------------------------------
# Structures


@frozen
class Band:
    """Clearance above `lower` (or equal to it when `inclusive`); `lower` None = everything below."""

    label: str
    lower: float | None
    inclusive: bool = True

    def contains(self, crcl: float) -> bool:
        if self.lower is None:
            return True
        return crcl > self.lower or (self.inclusive and crcl == self.lower)


@frozen
class BandDose:
    """One cell of a label table: a dose per kg or per administration, and its schedule."""

    schedule: str  # the label's words: "every 12 h", "twice daily", "3 times weekly after dialysis"
    mg_per_kg: float | None = None
    mg: float | None = None
    interval_hours: float | None = None  # None: not a fixed interval (see per_week)
    per_week: float | None = None  # doses per week without a fixed interval (dialysis days, 5 days a week)
    not_recommended: str | None = None  # the label's reason not to use the drug in this band

    @property
    def doses_per_week(self) -> float | None:
        if self.interval_hours:
            return 168.0 / self.interval_hours
        return self.per_week


@frozen
class BandTable:
    drug: str
    route: str  # "iv" or "oral"
    unit: str  # what the bands are in: "mL/min" or "mL/min/kg"
    bands: tuple[Band, ...]
    # Doses by phase (ganciclovir, valganciclovir, cidofovir) or regimen (foscarnet): one per band.
    doses: Mapping[str, tuple[BandDose, ...]]
    source: str  # key into clinical/sources.py


def _q(mg_per_kg: float, hours: float, schedule: str | None = None) -> BandDose:
    return BandDose(schedule or f"every {hours:g} h", mg_per_kg=mg_per_kg, interval_hours=hours)


def _tabs(mg: float, hours: float, schedule: str) -> BandDose:
    return BandDose(schedule, mg=mg, interval_hours=hours)


def _after_dialysis(mg_per_kg: float) -> BandDose:
    return BandDose("3 times weekly after dialysis", mg_per_kg=mg_per_kg, per_week=3)


# ---------------------------------------------------------------------------------------------
# Ganciclovir IV (label; reference section 3)

GANCICLOVIR = BandTable(
    drug="ganciclovir",
    route="iv",
    unit="mL/min",
    bands=(
        Band("CrCl ≥ 70 mL/min", 70),
        Band("CrCl 50-69 mL/min", 50),
        Band("CrCl 25-49 mL/min", 25),
        Band("CrCl 10-24 mL/min", 10),
        Band("CrCl < 10 mL/min or hemodialysis", None),
    ),
    doses={
        "induction": (_q(5, 12), _q(2.5, 12), _q(2.5, 24), _q(1.25, 24), _after_dialysis(1.25)),
        "maintenance": (_q(5, 24), _q(2.5, 24), _q(1.25, 24), _q(0.625, 24), _after_dialysis(0.625)),
    },
    source="ganciclovir-label",
)

# Label: maintenance may also be 6 mg/kg once daily 5 days a week.  Its renal table is written for
# 5 mg/kg, so the alternative is accepted only in the normal-clearance band.  Five doses a week, not
# seven: 6 mg/kg every day is 20% above the label's weekly amount.
ACCEPTED_ALTERNATIVES: Mapping[tuple[str, str, str], tuple[BandDose, ...]] = {
    ("ganciclovir", "maintenance", "CrCl ≥ 70 mL/min"): (
        BandDose("once daily, 5 days a week", mg_per_kg=6, per_week=5),
    ),
}

# ---------------------------------------------------------------------------------------------
# Valganciclovir oral (label; reference section 4).  Whole 450 mg tablets.

VALGANCICLOVIR_TABLET_MG = 450.0
_NO_TABLETS = "tablets not recommended at CrCl < 10 mL/min or on hemodialysis: use IV ganciclovir per its table"

VALGANCICLOVIR = BandTable(
    drug="valganciclovir",
    route="oral",
    unit="mL/min",
    bands=(
        Band("CrCl ≥ 60 mL/min", 60),
        Band("CrCl 40-59 mL/min", 40),
        Band("CrCl 25-39 mL/min", 25),
        Band("CrCl 10-24 mL/min", 10),
        Band("CrCl < 10 mL/min or hemodialysis", None),
    ),
    doses={
        "induction": (
            _tabs(900, 12, "twice daily"),
            _tabs(450, 12, "twice daily"),
            _tabs(450, 24, "once daily"),
            _tabs(450, 48, "every 2 days"),
            BandDose("", not_recommended=_NO_TABLETS),
        ),
        "maintenance": (
            _tabs(900, 24, "once daily"),
            _tabs(450, 24, "once daily"),
            _tabs(450, 48, "every 2 days"),
            # Twice weekly is a fixed frequency (2 per week), so it carries its mean interval.
            _tabs(450, 84, "twice weekly"),
            BandDose("", not_recommended=_NO_TABLETS),
        ),
    },
    source="valganciclovir-label",
)

# Guideline alternative on dialysis (Kotton 2025, G): valganciclovir oral solution, mg 3 times weekly after each
# session, by phase.  Shown as text, never proposed as an order; an oral-solution order on dialysis that gives
# it is read as that regimen (therapy.assess_dose), not as tablets the label does not recommend.
VALGANCICLOVIR_DIALYSIS_SOLUTION_MG = {"induction": 200.0, "maintenance": 100.0}
VALGANCICLOVIR_DIALYSIS_SCHEDULE = "3 times weekly after dialysis"
VALGANCICLOVIR_DIALYSIS_GUIDELINE = (
    "Guideline alternative on hemodialysis (Kotton 2025): valganciclovir oral solution "
    f"{VALGANCICLOVIR_DIALYSIS_SOLUTION_MG['induction']:g} mg 3 times weekly (induction) or "
    f"{VALGANCICLOVIR_DIALYSIS_SOLUTION_MG['maintenance']:g} mg 3 times weekly (maintenance), after dialysis."
)

# ---------------------------------------------------------------------------------------------
# Foscarnet IV (label; reference section 6).  Bands in CrCl mL/min/kg, doses in mg/kg.

_FOSCARNET_NR = "not recommended at CrCl < 0.4 mL/min/kg (label)"
FOSCARNET_MIN_CRCL_PER_KG = 0.4

FOSCARNET = BandTable(
    drug="foscarnet",
    route="iv",
    unit="mL/min/kg",
    bands=(
        Band("CrCl > 1.4 mL/min/kg", 1.4, inclusive=False),
        Band("CrCl > 1.0-1.4 mL/min/kg", 1.0, inclusive=False),
        Band("CrCl > 0.8-1.0 mL/min/kg", 0.8, inclusive=False),
        Band("CrCl > 0.6-0.8 mL/min/kg", 0.6, inclusive=False),
        Band("CrCl > 0.5-0.6 mL/min/kg", 0.5, inclusive=False),
        Band("CrCl ≥ 0.4-0.5 mL/min/kg", 0.4, inclusive=True),
        Band("CrCl < 0.4 mL/min/kg", None),
    ),
    doses={
        "60q8h": (_q(60, 8), _q(45, 8), _q(50, 12), _q(40, 12), _q(60, 24), _q(50, 24), BandDose("", not_recommended=_FOSCARNET_NR)),
        "90q12h": (_q(90, 12), _q(70, 12), _q(50, 12), _q(80, 24), _q(60, 24), _q(50, 24), BandDose("", not_recommended=_FOSCARNET_NR)),
        "90/day": (_q(90, 24), _q(70, 24), _q(50, 24), _q(80, 48), _q(60, 48), _q(50, 48), BandDose("", not_recommended=_FOSCARNET_NR)),
        "120/day": (_q(120, 24), _q(90, 24), _q(65, 24), _q(105, 48), _q(80, 48), _q(65, 48), BandDose("", not_recommended=_FOSCARNET_NR)),
    },
    source="foscarnet-label",
)

# Which phase each foscarnet regimen belongs to, and the default regimen of each phase.
FOSCARNET_REGIMEN_PHASE = {"60q8h": "induction", "90q12h": "induction", "90/day": "maintenance", "120/day": "maintenance"}
FOSCARNET_DEFAULT_REGIMEN = {"induction": "90q12h", "maintenance": "90/day"}

# ---------------------------------------------------------------------------------------------
# Cidofovir IV (label; reference section 7): one dose, contraindicated in renal impairment.

CIDOFOVIR_MAX_CREATININE_MG_DL = 1.5  # contraindicated above
CIDOFOVIR_MIN_CRCL = 55  # contraindicated at or below (Cockcroft-Gault, mL/min)
CIDOFOVIR_MAX_URINE_PROTEIN_MG_DL = 100  # contraindicated at or above
CIDOFOVIR_MAX_DIPSTICK_GRADE = 2  # "2+": contraindicated at or above
CIDOFOVIR_NEPHROTOXIN_WASHOUT_DAYS = 7  # other nephrotoxic agents stopped at least this long before
CIDOFOVIR_PRE_DOSE_CHECK_HOURS = 48  # creatinine and urine protein within 48 h before each dose
# Creatinine up from the baseline before the course: 0.3-0.4 mg/dL -> 3 mg/kg; >= 0.5 mg/dL -> stop.
# The label writes the rule in 0.1 mg/dL steps, so a rise is judged at that step (rounded half up):
# every rise falls in one of its rows (0.45 is 0.5: stop; 0.25 is 0.3: 3 mg/kg).
CIDOFOVIR_REDUCE_RISE_MG_DL = 0.3
CIDOFOVIR_STOP_RISE_MG_DL = 0.5
CIDOFOVIR_RISE_STEP_MG_DL = "0.1"  # a decimal string: the step is applied in decimal, not float
CIDOFOVIR_REDUCED_MG_PER_KG = 3
CIDOFOVIR_STOP_DIPSTICK_GRADE = 3  # "≥ 3+ proteinuria" during a course: stop
# The same measured in mg/dL: the reagent strip's 3+ pad, on the scale on which the label equates ≥ 100 mg/dL
# with ≥ 2+ (300 mg/dL).
CIDOFOVIR_STOP_URINE_PROTEIN_MG_DL = next(mg for mg, grade in DIPSTICK_PADS_MG_DL if grade == CIDOFOVIR_STOP_DIPSTICK_GRADE)
CIDOFOVIR_INDUCTION_DAYS = 14  # "once weekly × 2": a dose 14 days or more into the course is maintenance
_CIDOFOVIR_CI = "contraindicated at CrCl ≤ 55 mL/min or serum creatinine > 1.5 mg/dL (label)"

CIDOFOVIR = BandTable(
    drug="cidofovir",
    route="iv",
    unit="mL/min",
    bands=(Band("CrCl > 55 mL/min", 55, inclusive=False), Band("CrCl ≤ 55 mL/min", None)),
    doses={
        "induction": (_q(5, 168, "once weekly for 2 weeks"), BandDose("", not_recommended=_CIDOFOVIR_CI)),
        "maintenance": (_q(5, 336, "every 2 weeks"), BandDose("", not_recommended=_CIDOFOVIR_CI)),
    },
    source="cidofovir-label",
)

_CIDOFOVIR_PRE_DOSE_CHECKS = "Check serum creatinine and urine protein within 48 h before each dose (label)."
CIDOFOVIR_PREPARATION = (
    "Probenecid 2 g orally 3 h before the infusion, then 1 g at 2 h and 1 g at 8 h after it; "
    "1 L normal saline over 1-2 h before the infusion (a second litre if tolerated). " + _CIDOFOVIR_PRE_DOSE_CHECKS
)
# The label's probenecid and saline amounts are an adult's: for a child, what is given, not how much.
CIDOFOVIR_PREPARATION_NOT_ADULT = (
    "Probenecid before and after each infusion, and normal saline before it (label; its amounts are for adults "
    "and are not given here for this patient). " + _CIDOFOVIR_PRE_DOSE_CHECKS
)
FOSCARNET_HYDRATION_WORDS = "750-1000 mL before the first dose and with each dose"
FOSCARNET_HYDRATION = f"Hydration: {FOSCARNET_HYDRATION_WORDS} (label)."


@frozen
class InfusionTime:
    """How long the label says one dose of a regimen runs."""

    mg_per_kg: float
    interval_hours: float
    minimum_minutes: float
    words: str  # as the label says it


# Foscarnet induction (label; reference section 6).  The reference gives infusion times for these two
# regimens only: renally adjusted and maintenance doses have none, so theirs are not checked.
FOSCARNET_INFUSION_TIMES = (
    InfusionTime(90, 12, 90, "over 1.5-2 h"),
    InfusionTime(60, 8, 60, "over at least 1 h"),
)

BAND_TABLES: Mapping[str, BandTable] = {t.drug: t for t in (GANCICLOVIR, VALGANCICLOVIR, FOSCARNET, CIDOFOVIR)}

# ---------------------------------------------------------------------------------------------
# Fixed-dose drugs (label; reference section 8): no renal band, but co-medications change the dose.


@frozen
class FixedDose:
    mg: float
    interval_hours: float
    schedule: str
    route: str


@frozen
class CoMedicationAdjustment:
    """With a drug of `group` (see clinical/drugs.py) the label's dose is `dose`, or not recommended."""

    group: str
    dose: FixedDose | None
    not_recommended: str | None = None


@frozen
class FixedDoseDrug:
    drug: str
    standard: FixedDose
    adjustments: tuple[CoMedicationAdjustment, ...]
    source: str


# Letermovir prophylaxis after allogeneic HSCT (label; reference section 8): started on day 0-28 after
# the transplant, given through day 100, extendable to day 200.
LETERMOVIR_HSCT_LATEST_START_DAY = 28
LETERMOVIR_HSCT_THROUGH_DAY = 100
LETERMOVIR_HSCT_EXTENDED_THROUGH_DAY = 200



@frozen
class ProphylaxisWindow:
    """How long a drug's label gives prophylaxis after a solid-organ transplant."""

    drug: str
    organs: frozenset[str]  # transplanted organs the entry applies to (all of them)
    transplant: str  # how a card names the transplant
    through_day: int  # the last day after the transplant the label gives it
    label: str  # the label's words, for the card
    source: str


_VGC_SOT = ("valganciclovir 900 mg once daily for CMV prevention after solid-organ transplant, to day 100 after a "
            "heart or kidney-pancreas transplant and day 200 after a kidney transplant")

# Prophylaxis after solid-organ transplant (labels; reference sections 4 and 8), the most specific
# entry of a drug first.  Letermovir's kidney indication is donor-seropositive, recipient-seronegative
# (D+/R-); serostatus is not read, so the window is judged for any kidney recipient on it.
SOT_PROPHYLAXIS_WINDOWS: tuple[ProphylaxisWindow, ...] = (
    ProphylaxisWindow("valganciclovir", frozenset({"kidney", "pancreas"}), "kidney-pancreas", 100, _VGC_SOT,
                      "valganciclovir-label"),
    ProphylaxisWindow("valganciclovir", frozenset({"heart"}), "heart", 100, _VGC_SOT, "valganciclovir-label"),
    ProphylaxisWindow("valganciclovir", frozenset({"kidney"}), "kidney", 200, _VGC_SOT, "valganciclovir-label"),
    ProphylaxisWindow("letermovir", frozenset({"kidney"}), "kidney", 200,
                      "letermovir prophylaxis after a kidney transplant from a CMV-seropositive donor to a "
                      "seronegative recipient (D+/R-), through day 200 after the transplant", "letermovir-label"),
)

_MARIBAVIR_NR = "not recommended with {partner}: it lowers maribavir levels (label)"

FIXED_DOSE_DRUGS: Mapping[str, FixedDoseDrug] = {
    d.drug: d
    for d in (
        FixedDoseDrug(
            "letermovir",
            FixedDose(480, 24, "once daily", "oral"),
            (CoMedicationAdjustment("cyclosporine", FixedDose(240, 24, "once daily", "oral")),),
            "letermovir-label",
        ),
        FixedDoseDrug(
            "maribavir",
            FixedDose(400, 12, "twice daily", "oral"),
            (
                CoMedicationAdjustment("carbamazepine", FixedDose(800, 12, "twice daily", "oral")),
                CoMedicationAdjustment("phenytoin", FixedDose(1200, 12, "twice daily", "oral")),
                CoMedicationAdjustment("phenobarbital", FixedDose(1200, 12, "twice daily", "oral")),
                CoMedicationAdjustment("rifampin", None, _MARIBAVIR_NR.format(partner="rifampin")),
                CoMedicationAdjustment("rifabutin", None, _MARIBAVIR_NR.format(partner="rifabutin")),
                CoMedicationAdjustment("st-johns-wort", None, _MARIBAVIR_NR.format(partner="St John's wort")),
            ),
            "maribavir-label",
        ),
    )
}
