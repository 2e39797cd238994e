"""Is the ordered anti-CMV therapy the right one at the right dose?

- Phase detection and the renal dose check (ganciclovir, valganciclovir, foscarnet).  An order in
  renal impairment may already be the adjusted one (ganciclovir 2.5 mg/kg every 24 h is induction at
  CrCl 25-49 but looks like maintenance), so the order is first matched against every band of the
  patient's clearance (induction and maintenance; all four foscarnet regimens): a match is correct,
  whatever its interval suggests.  Only an order that matches no band gets a phase from its interval
  (every 12 h or more often = induction), and the card says which phase it assumed and shows the
  other phase's band too.
- Duplicate therapy: two systemic anti-CMV agents at once.
- Prophylaxis is not treatment: letermovir ordered with CMV disease or treatment-level viraemia.
- Route: ganciclovir ordered intramuscular, subcutaneous or as an IV push or bolus (its label: IV
  infusion only); valganciclovir tablets through a feeding tube (its label: do not crush them);
  ganciclovir by mouth (not interchangeable 1:1 with valganciclovir).
- Infusion time: a foscarnet induction dose ordered to run faster than its label says.
- Label dose of the fixed-dose drugs: letermovir or maribavir ordered at another dose than the label's
  (co-medications that change it are the interaction rules').
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from cds_service.clinical import dose_tables as T
from cds_service.clinical.drugs import (
    GANCICLOVIR_FAMILY,
    SHOWN_ORDERS,
    TREATMENT_AGENTS,
    also_on_record,
    cidofovir_course,
    cmv_drug,
    current_orders,
    describe_order,
    display_name,
    list_orders,
    other_orders,
)
from cds_service.clinical.findings import DoseProposal, Finding, StopOrderProposal, discontinuation
from cds_service.clinical.inputs import dosing_weight_line, fitting, fmt, fmt_interval, inputs_block
from cds_service.clinical.missing_data import Gap
from cds_service.clinical.renal_dosing import (
    CannotDose,
    RenalDose,
    dialysis_alternative,
    dialysis_solution_doses,
    dose_proposal,
    label_infusion,
    renal_dose,
    same_frequency,
)
from cds_service.clinical.sources import cite
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.frozen import frozen
from cds_service.policy import Policy

# The drugs whose label gives a dose by kidney function (a band table), and the band doses an order is
# matched against, in the order they are tried.
_CANDIDATES = {
    "ganciclovir": (("induction", None), ("maintenance", None)),
    "valganciclovir": (("induction", None), ("maintenance", None)),
    "foscarnet": (("induction", "60q8h"), ("induction", "90q12h"), ("maintenance", "90/day"), ("maintenance", "120/day")),
    "cidofovir": (("induction", None), ("maintenance", None)),
}
BANDED_DRUGS = tuple(_CANDIDATES)
# The longest interval that still reads as induction (label): every 12 h for ganciclovir and
# valganciclovir; weekly for cidofovir, whose maintenance is every 2 weeks.
_INDUCTION_MAX_INTERVAL_HOURS = {"ganciclovir": 12, "valganciclovir": 12, "cidofovir": 168}


@frozen
class DoseAssessment:
    """An order read against the label's bands for the patient's clearance."""

    drug: str
    phase: str  # matched, or assumed from the interval
    regimen: str | None
    how: str  # how the phase was decided, in words
    matched: bool = False  # the order is one of the band doses (or an accepted alternative)
    dose: RenalDose | None = None  # the band dose for `phase`
    bands: tuple[RenalDose, ...] = ()  # every candidate band dose, for the card
    cannot: CannotDose | None = None  # the band dose cannot be computed (inputs missing)
    unreadable: tuple[str, ...] = ()  # why the order's dose or interval cannot be compared
    gaps: tuple[Gap, ...] = ()  # both of the above, for the missing-data finding
    # The day of its course the dose is given on, when that decided the phase (cidofovir): 0 for the
    # course's first dose.
    course_day: int | None = None
    # Dialysis on record beside a higher clearance, and the order above the label's dose on both readings:
    # the phase's band dose (on dialysis, off dialysis), for the card that says it is too high either way.
    readings: tuple[RenalDose, RenalDose] | None = None
    # A foscarnet order read as induction by its course (foscarnet_induction), which its interval reads as
    # maintenance: that reading's band dose, offered beside the induction's (which is true is the clinician's).
    maintenance_reading: RenalDose | None = None


def cidofovir_course_day(
    order: MedicationOrder, facts: ClinicalFacts, policy: Policy, course: tuple[MedicationOrder, ...] | None = None
) -> tuple[date, int] | None:
    """(start of the course, its day) a cidofovir order's next dose is given on (a draft's start, else
    today), when a course is on record (drugs.cidofovir_course, or `course` when already read); None for
    a first dose, or a course none of whose starts is on record."""
    if course is None:
        course = cidofovir_course(order, facts, policy.cidofovir_course_gap_days)
    starts = [o.start for o in course if o.start is not None]
    if not starts:
        return None
    today = facts.evaluated_at.date()
    given = (order.start or today) if order.is_draft else today
    return min(starts), (given - min(starts)).days


def cidofovir_induction_left(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> tuple[int, str | None]:
    """(days of the weekly induction left for a cidofovir order's next dose, the schedule's words when part of
    it is behind it).  Label: once weekly for 2 weeks, then every 2 weeks (a new order), so an induction dose
    proposed for the order is bounded to those days, not an open-ended weekly order."""
    course = cidofovir_course_day(order, facts, policy)
    day = course[1] if course else 0
    return T.CIDOFOVIR_INDUCTION_DAYS - day, (f"once weekly to day {T.CIDOFOVIR_INDUCTION_DAYS} of the course" if day > 0 else None)


# Foscarnet induction lasts 2-3 weeks (label): a foscarnet course begun less than this long ago may be in it.
FOSCARNET_INDUCTION_MIN_DAYS = 14


@frozen
class FoscarnetInduction:
    regimen: str  # the induction regimen whose dose of another clearance band the order gives
    words: str  # how the phase was read, for the card


def foscarnet_induction(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> FoscarnetInduction | None:
    """A foscarnet order at a daily (or longer) interval that may be induction all the same: it gives the induction
    dose of some band of the label's table (a dose reduced for the kidneys; they may have changed since), and
    foscarnet began less than FOSCARNET_INDUCTION_MIN_DAYS ago (the order and every foscarnet order on record,
    active or ended among the orders read, start within that time; a draft starts today).  Its interval reads it as
    maintenance, so a course whose kidneys recovered would be raised only to the maintenance dose, half the
    induction's; but it may be maintenance (after another drug's induction, or an induction before the orders
    read): the renal card offers both.  Any foscarnet start not on record: not read so (the course may be older)."""
    today = facts.evaluated_at.date()
    own = order.start or (today if order.is_draft else None)
    foscarnet = [o for o in facts.medications if cmv_drug(o) == "foscarnet"]
    if own is None or any(o.start is None for o in foscarnet):
        return None
    start = min([own, *(o.start for o in foscarnet)])
    day = (today - start).days
    if day >= FOSCARNET_INDUCTION_MIN_DAYS:
        return None
    weight = facts.dosing_weight.kg if facts.dosing_weight else None
    # The default induction regimen first: a reduced dose both regimens share (60 mg/kg q24h) is read as its.
    default = T.FOSCARNET_DEFAULT_REGIMEN["induction"]
    inductions = sorted((r for r, phase in T.FOSCARNET_REGIMEN_PHASE.items() if phase == "induction"), key=lambda r: r != default)
    for regimen in inductions:
        for band, cell in zip(T.FOSCARNET.bands, T.FOSCARNET.doses[regimen]):
            if cell.mg_per_kg is not None and _gives(order, "foscarnet", cell.mg_per_kg * weight if weight else None,
                                                     cell.mg_per_kg, cell.doses_per_week, policy):
                return FoscarnetInduction(regimen, (
                    f"induction, or maintenance by its interval: foscarnet began on record {start.isoformat()}, {day} "
                    "days ago (label: induction 2-3 weeks), and the order gives the induction dose of "
                    f"{band.label} ({fmt(cell.mg_per_kg)} mg/kg {cell.schedule}); maintenance if it follows an induction "
                    "with another drug, or one before the orders read"))
    return None


def first_cidofovir_dose(order: MedicationOrder, facts: ClinicalFacts, course: tuple[MedicationOrder, ...]) -> bool:
    """A cidofovir draft with no course on record (`course`, its drugs.cidofovir_course, empty: no cidofovir
    order active, ended within the course gap, or of unknown dates) that no other cidofovir draft may come
    before: the first dose of a course, which the label gives weekly (induction).  A draft that starts
    after another, as in an order set of induction then maintenance, is not."""
    return order.is_draft and not course and not any(
        o.id != order.id and cmv_drug(o) == "cidofovir" and (o.start is None or order.start is None or o.start <= order.start)
        for o in facts.drafts
    )


def assess_dose(
    order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy, by_course: bool = True
) -> DoseAssessment:
    """Match the order against the bands of the patient's clearance; see the module docstring.  A
    cidofovir order `by_course`: from day 14 of its course (cidofovir_course_day) the label's
    once-weekly-x-2 induction is behind it, and only the maintenance band (every 2 weeks) applies; a
    course's first dose (first_cidofovir_dose) ordered at a maintenance interval is held to induction.

    The order checks, the regimen's phase, guidance and resistance each assess the same orders: once per
    evaluation (facts.once)."""
    by_course = by_course and drug in ("cidofovir", "foscarnet")  # whose phase may depend on its course
    return facts.once(("assess_dose", drug, by_course), lambda: _assess_dose(order, drug, facts, policy, by_course),
                      order, policy)


def _assess_dose(order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy, by_course: bool) -> DoseAssessment:
    unreadable = _unreadable(order)
    phase, regimen = phase_by_interval(drug, order, facts)
    candidates = _CANDIDATES[drug]
    cidofovir = by_course and drug == "cidofovir"
    orders = cidofovir_course(order, facts, policy.cidofovir_course_gap_days) if cidofovir else ()
    course = cidofovir_course_day(order, facts, policy, orders) if cidofovir else None
    course_day = None
    in_induction = foscarnet_induction(order, facts, policy) if by_course and drug == "foscarnet" and phase == "maintenance" else None
    if course is not None and course[1] >= T.CIDOFOVIR_INDUCTION_DAYS:
        phase, candidates, course_day = "maintenance", (("maintenance", None),), course[1]
    elif cidofovir and phase == "maintenance" and first_cidofovir_dose(order, facts, orders):
        phase, candidates, course_day = "induction", (("induction", None),), 0
    elif in_induction is not None:
        by_interval = (phase, regimen)
        phase, regimen = "induction", in_induction.regimen
    doses = [renal_dose(drug, p, facts, policy, r) for p, r in candidates]
    # What the phase the interval reads as cannot have (its reasons may name its band's dose), else any phase.
    cannot = next((d for (p, r), d in zip(candidates, doses) if isinstance(d, CannotDose) and (p, r) == (phase, regimen)),
                  None) or next((d for d in doses if isinstance(d, CannotDose)), None)
    readings = None if unreadable or not cannot else _above_either_reading(order, doses, candidates, phase, regimen, facts, policy)
    gaps = []
    if cannot and not readings:  # else its own card says what is to be confirmed
        gaps.append(Gap("renal dose", (*cannot.reasons, *_per_kg_reading(order, cannot, zip(candidates, doses), policy)),
                        cannot.missing, f"{drug}-label"))
    if drug == "valganciclovir" and oral_solution(order) and not unreadable and (solution := next((
            rd for rd in dialysis_solution_doses(facts) if matches_band(order, rd, facts, policy)), None)):
        # The guideline's oral solution on dialysis, where the label recommends no tablets: that regimen, its phase.
        how = f"the order matches the guideline's oral solution on hemodialysis ({solution.phase}; Kotton 2025)"
        return DoseAssessment(drug, solution.phase, None, how, matched=True, dose=solution, bands=(solution,),
                              gaps=tuple(gaps), course_day=course_day)
    if cannot and not unreadable and (on_record := _matched_on_dialysis(order, doses, facts, policy)):
        # Dialysis on record and the order its dialysis dose: that is the phase (a course's induction is not
        # prophylaxis), and no dose card; whether the patient is on dialysis is still to confirm (gaps).
        how = f"the order matches the {on_record.phase}{_regimen_words(on_record.regimen)} band on dialysis ({on_record.band})"
        return DoseAssessment(drug, on_record.phase, on_record.regimen, how, matched=True, dose=on_record,
                              bands=_readings(doses)[0], gaps=tuple(gaps), course_day=course_day)
    if unreadable:
        gaps.append(Gap("ordered dose", unreadable, ("order",), f"{drug}-label"))
    how_interval = f"assumed {phase}{_regimen_words(regimen)} from its interval ({_order_interval(order)})"
    if course_day == 0:
        how_interval = (f"induction: the first dose of a cidofovir course (no cidofovir order on record active or "
                        f"ended in the {policy.cidofovir_course_gap_days} days before it, the course gap of local policy; "
                        "label: once weekly for 2 weeks, then every 2 weeks)")
    elif course_day is not None:
        how_interval = (f"maintenance: day {course_day} of the cidofovir course begun {course[0].isoformat()} (label: "
                        "once weekly for 2 weeks, then every 2 weeks)")
    elif in_induction is not None:
        how_interval = in_induction.words
    if cannot or unreadable:
        return DoseAssessment(drug, phase, regimen, how_interval, cannot=cannot, unreadable=unreadable, gaps=tuple(gaps),
                              course_day=course_day, readings=readings)
    bands = tuple(doses)
    for rd in bands:
        if matches_band(order, rd, facts, policy):
            how = f"the order matches the {rd.phase}{_regimen_words(rd.regimen)} band"
            return DoseAssessment(drug, rd.phase, rd.regimen, how, matched=True, dose=rd, bands=bands, course_day=course_day)
    assumed = next(rd for rd in bands if rd.phase == phase and rd.regimen == regimen)
    maintenance = next(rd for rd in bands if (rd.phase, rd.regimen) == by_interval) if in_induction else None
    how = f"the order matches no band for {assumed.band}; {how_interval}"
    return DoseAssessment(drug, phase, regimen, how, dose=assumed, bands=bands, course_day=course_day,
                          maintenance_reading=maintenance)


def _readings(doses) -> tuple[tuple, tuple] | None:
    """The candidate doses on dialysis and off it (renal_dosing.CannotDose.readings), when the record says
    dialysis beside a higher clearance; None otherwise."""
    if not all(isinstance(d, CannotDose) and len(d.readings) == 2 for d in doses):
        return None
    on, off = zip(*(d.readings for d in doses))
    return on, off


def _above_either_reading(order, doses, candidates, phase, regimen, facts, policy) -> tuple[RenalDose, RenalDose] | None:
    """The phase's band dose on dialysis and off it, when the order is above every candidate band dose of both
    readings (_readings): too high whichever of the record's two accounts is true."""
    if (readings := _readings(doses)) is None:
        return None
    on, off = readings
    if not all(isinstance(rd, RenalDose) and _above(order, rd, facts, policy) for rd in (*on, *off)):
        return None
    at = next((i for i, candidate in enumerate(candidates) if candidate == (phase, regimen)), 0)
    return on[at], off[at]


def _matched_on_dialysis(order, doses, facts, policy) -> RenalDose | None:
    """The band dose on dialysis (_readings) that the order gives, when the record says dialysis beside a higher
    clearance: the dose the record's own account of the kidneys calls for."""
    if (readings := _readings(doses)) is None:
        return None
    return next((rd for rd in readings[0] if isinstance(rd, RenalDose) and matches_band(order, rd, facts, policy)), None)


def _above(order: MedicationOrder, rd: RenalDose, facts: ClinicalFacts, policy: Policy) -> bool:
    """The order gives more per day than the band dose (beyond the policy's tolerance), or the label does not
    recommend the drug in that band at all."""
    if rd.not_recommended:
        return True
    if not order.interval_hours:
        return False
    ordered, label = _daily(order, rd, facts)
    return label > 0 and ordered > label * (1 + policy.dose_tolerance_fraction)


def above_its_band(order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy) -> str | None:
    """In words, how far an order gives more than the label's band for the clearance now ('900 mg q12h: 2x the
    band's daily dose for CrCl 56.6 mL/min (450 mg q12h)'), or that the label does not recommend the drug in
    that band; None when it does not (or cannot be compared)."""
    a = assess_dose(order, drug, facts, policy)
    rd = a.dose
    if rd is None or a.matched or not _above(order, rd, facts, policy):
        return None
    if rd.not_recommended:
        return f"{_ordered_short(order, rd)}: {drug} {rd.not_recommended}"
    _, amount = _compared(order, rd, facts, "the band")
    return f"{_ordered_short(order, rd)}: {amount} for {_crcl_words(facts, rd)} ({_band_short(order, rd)})"


def phase_by_interval(drug: str, order: MedicationOrder, facts: ClinicalFacts) -> tuple[str, str | None]:
    """The label's phase an interval reads as: every 12 h or more often is induction (cidofovir:
    weekly or more often).

    Foscarnet: every 8 h (or more often than every 10 h) is the 60 mg/kg q8h regimen, up to 24 h the
    90 mg/kg q12h regimen; daily or less often is maintenance, 90 or 120 mg/kg/day by which is closer
    to the ordered mg/kg.  Without a readable interval: induction (the card says it was assumed).
    """
    hours = order.interval_hours
    if drug != "foscarnet":
        return ("induction" if hours is None or hours <= _INDUCTION_MAX_INTERVAL_HOURS[drug] else "maintenance"), None
    if hours is None or hours < 24:
        return "induction", ("60q8h" if hours is not None and hours < 10 else "90q12h")
    per_kg = ordered_mg_per_kg(order, facts)
    regimen = "120/day" if per_kg is not None and abs(per_kg - 120) < abs(per_kg - 90) else "90/day"
    return "maintenance", regimen


def ordered_mg_per_kg(order: MedicationOrder, facts: ClinicalFacts) -> float | None:
    if order.mg_per_kg is not None:
        return order.mg_per_kg
    if order.dose_mg is not None and facts.dosing_weight is not None:
        return order.dose_mg / facts.dosing_weight.kg
    return None


def matches_band(order: MedicationOrder, rd: RenalDose, facts: ClinicalFacts, policy: Policy) -> bool:
    """Does the order give the band dose (within tolerance) at the band's frequency?"""
    if rd.not_recommended:
        return False
    if _gives(order, rd.drug, rd.dose_mg, rd.mg_per_kg, rd.doses_per_week, policy):
        return True
    per_kg = ordered_mg_per_kg(order, facts)
    for alt in T.ACCEPTED_ALTERNATIVES.get((rd.drug, rd.phase, rd.band), ()):
        if (
            per_kg is not None
            and abs(per_kg - alt.mg_per_kg) <= policy.dose_tolerance_fraction * alt.mg_per_kg
            and same_frequency(order.interval_hours, alt.doses_per_week)
        ):
            return True
    return False


def _gives(order: MedicationOrder, drug: str, dose_mg: float | None, mg_per_kg: float | None, per_week: float | None,
           policy: Policy) -> bool:
    """Does the order give this dose (within tolerance) at this frequency?"""
    return _same_dose(order, drug, dose_mg, mg_per_kg, policy) and same_frequency(order.interval_hours, per_week)


def _same_dose(order: MedicationOrder, drug: str, dose_mg: float | None, mg_per_kg: float | None, policy: Policy) -> bool:
    tolerance = policy.dose_tolerance_fraction
    if mg_per_kg is not None and order.mg_per_kg is not None:  # ordered per kg: compare per kg
        return abs(order.mg_per_kg - mg_per_kg) <= tolerance * mg_per_kg + 1e-9
    if order.dose_mg is None or dose_mg is None:
        return False
    step = policy.rounding_step_mg(drug)  # 0 for whole tablets and fixed doses
    return abs(order.dose_mg - dose_mg) <= max(tolerance * dose_mg, step) + 1e-9


def _per_kg_reading(order: MedicationOrder, cannot: CannotDose, bands, policy: Policy) -> tuple[str, ...]:
    """An order written per kg against the bands' doses per kg, when only the weight for the mg dose is missing:
    how it compares needs no weight.  `bands`: ((phase, regimen), dose) of every band of the clearance; the order
    giving any of them is that band's dose, as matching reads an order with a weight; else it is compared with
    `cannot`'s, the phase its interval reads as."""
    if cannot.band_per_kg is None or order.mg_per_kg is None or not order.interval_hours:
        return ()
    ordered = f"the order gives {fmt(order.mg_per_kg)} mg/kg {_order_interval(order)}"
    for (phase, regimen), band in sorted(bands, key=lambda b: b[1] is not cannot):  # the interval's phase first
        per_kg = band.band_per_kg if isinstance(band, CannotDose) else None
        if per_kg and _gives(order, cannot.drug, None, *per_kg, policy):
            return (f"{ordered}, the {phase}{_regimen_words(regimen)} band's dose per kg",)
    band_mg_per_kg, per_week = cannot.band_per_kg
    ratio = (order.mg_per_kg * 168 / order.interval_hours) / (band_mg_per_kg * per_week)
    return (f"{ordered}: {fmt(ratio, 2)}x the band's dose per kg a day "
            f"({fmt(order.mg_per_kg * 24 / order.interval_hours)} against {fmt(band_mg_per_kg * per_week / 7)} mg/kg a day)",)


def _unreadable(order: MedicationOrder) -> tuple[str, ...]:
    reasons = []
    if order.dose_mg is None and order.mg_per_kg is None:
        reasons.append("the ordered dose could not be read as mg or mg/kg")
    if not order.interval_hours:
        reasons.append("the dosing interval could not be read")
    if reasons and order.problems:
        reasons.extend(order.problems)
    return tuple(dict.fromkeys(reasons))


# ---------------------------------------------------------------------------------------------
# Renal dose adjustment finding


def renal_dose_finding(order: MedicationOrder, a: DoseAssessment, facts: ClinicalFacts, policy: Policy) -> Finding | None:
    """A warning when the order differs from its band, or is above it on both readings of a record that says
    dialysis beside a higher clearance; None when it matches or cannot be checked."""
    if a.readings:
        return _above_either_finding(order, a)
    if a.matched or a.dose is None:
        return None
    rd = a.dose
    if rd.not_recommended:
        # valganciclovir < 10: switch to IV ganciclovir; foscarnet < 0.4 is a nephrotoxicity finding.
        return _valganciclovir_no_tablets(order, a, facts, policy) if a.drug == "valganciclovir" else None
    rd = as_ordered(rd, order)
    alt = as_ordered(a.maintenance_reading, order) if a.maintenance_reading else None
    induction_left = None
    if rd.drug == "cidofovir" and rd.phase == "induction" and order.is_draft:
        # A draft's weekly induction ends with the induction (the maintenance every 2 weeks is a new order).
        induction_left, schedule = cidofovir_induction_left(order, facts, policy)
        if schedule:
            rd = replace(rd, schedule=schedule, calculation=rd.calculation.replace(rd.schedule, schedule))
    # What the band dose is for: the clearance, or (cidofovir) the day of the course.
    basis = (
        f"for {_crcl_words(facts, rd)}" if a.course_day is None
        else "for a course's first dose" if a.course_day == 0 else f"on day {a.course_day} of the course"
    )
    direction, amount = _compared(order, rd, facts, "the band")
    said = f"{a.drug.capitalize()} {_ordered_short(order, rd)} {direction} {basis}: {_band_short(order, rd)}"
    summary = fitting(f"{said} ({amount})", said)
    if alt is not None:  # induction or maintenance: both doses, the clinician choosing (neither recommended)
        said = f"{a.drug.capitalize()} {_ordered_short(order, rd)} matches no band {basis}"
        summary = fitting(f"{said}: induction {_band_short(order, rd)} or maintenance {_band_short(order, alt)}",
                          f"{said}: induction {fmt(rd.dose_mg)} mg {fmt_interval(rd.interval_hours, rd.schedule)} or "
                          f"maintenance {fmt(alt.dose_mg)} mg {fmt_interval(alt.interval_hours, alt.schedule)}", said)
    lines = [
        f"**Ordered:** {describe_order(order)}",
        f"**Phase:** {a.how}.",
        f"**Label band ({rd.band}):** " + "; ".join(_band_line(b) for b in a.bands) + ".",
        f"**{'If induction' if alt else 'Recommended'} ({rd.phase}{_regimen_words(rd.regimen)}):** {_band_long(rd)}. "
        f"Calculation: {rd.calculation}.",
    ]
    if alt is not None:
        lines.append(f"**If maintenance ({alt.phase}{_regimen_words(alt.regimen)}):** {_band_long(alt)}. "
                     f"Calculation: {alt.calculation}.")
    if direction == "too low":
        lines.append("Under-dosing risks treatment failure and ganciclovir/foscarnet resistance.")
    if rd.drug == "foscarnet":  # as every card proposing foscarnet says
        lines.append(T.FOSCARNET_HYDRATION)
    lines += _inputs_and_source(rd, a.drug)
    proposal = band_proposal(
        f"Change to {a.drug} {_band_long(rd)}" + (" (induction)" if alt else ""), rd, order, replaces=order.id,
        recommended=alt is None, tolerance=policy.dose_tolerance_fraction, duration_days=induction_left,
    )
    if alt is None:
        return _renal_card(order, a.drug, summary, lines, (proposal,))
    other = band_proposal(f"Change to {a.drug} {_band_long(alt)} (maintenance)", alt, order, replaces=order.id,
                          tolerance=policy.dose_tolerance_fraction)
    return _renal_card(order, a.drug, summary, lines, (proposal, other))


def _renal_card(
    order: MedicationOrder, drug: str, summary: str, lines: list[str], proposals: tuple = (),
    reasons: tuple[str, ...] = ("dose-confirmed-id-pharmacy", "dialysis-nephrology", "patient-specific-regimen"),
) -> Finding:
    """The renal-dose-adjustment warning of an order (one per order)."""
    return Finding(
        topic="renal-dose-adjustment",
        indicator="warning",
        summary=summary,
        detail="\n".join(lines),
        sources=cite(f"{drug}-label"),
        proposals=proposals,
        override_reasons=reasons,
        order_id=order.id,
        key=f"renal-dose-adjustment|{order.id}",
    )


def _inputs_and_source(rd: RenalDose, drug: str) -> list[str]:
    return [*inputs_block(rd.inputs), "", f"Source: {rd.source.label if rd.source else drug + ' label'}, renal dose table."]


def _above_either_finding(order: MedicationOrder, a: DoseAssessment) -> Finding:
    """The order is above the label's dose on dialysis and off it: no dose is proposed (which is true is the
    clinician's to confirm), but the order is too high either way."""
    on, off = a.readings
    on_words = f"{a.drug} {on.not_recommended}" if on.not_recommended else f"{_band_long(on)}. Calculation: {on.calculation}"
    summary = fitting(
        f"{a.drug.capitalize()} {_ordered_short(order, off)} is above the label's dose on dialysis and off it: confirm dialysis",
        f"{a.drug.capitalize()} is above the label's dose on dialysis and off it: confirm dialysis")
    lines = [
        f"**Ordered:** {describe_order(order)}",
        f"**Phase:** {a.how}.",
        f"**Kidney function:** {a.cannot.reasons[0]}.",
        f"**On dialysis ({on.band}):** {on_words}.",
        f"**Off dialysis ({off.band}):** {_band_long(off)}. Calculation: {off.calculation}.",
        "Whichever is true, the order is above the label's dose. No dose is proposed until it is confirmed "
        "whether the patient is on dialysis.",
        *_inputs_and_source(off, a.drug),
    ]
    return _renal_card(order, a.drug, summary, lines,
                       reasons=("dialysis-nephrology", "dose-confirmed-id-pharmacy", "patient-specific-regimen"))


# Drugs whose label allows IV infusion only, and the injections it rules out (MedicationOrder.route_text).
IV_INFUSION_ONLY = {"ganciclovir": "never by rapid IV bolus, intramuscular or subcutaneous injection"}
NOT_IV_INJECTIONS = ("intramuscular", "subcutaneous")


def forbidden_injection(order: MedicationOrder, drug: str) -> str | None:
    """How an IV-infusion-only drug is ordered instead, in words ("intramuscular", "as an IV push or
    bolus"); None when it is not (or the order does not say)."""
    if drug not in IV_INFUSION_ONLY:
        return None
    if order.route_text in NOT_IV_INJECTIONS:
        return order.route_text
    if order.bolus_text and order.route == "iv":
        return "as an IV push or bolus"
    return None


def route_finding(order: MedicationOrder, a: DoseAssessment) -> Finding | None:
    """Critical: an IV-infusion-only drug ordered intramuscular, subcutaneous or as an IV push or
    bolus (the label: do not give).  Proposes the order as an IV infusion at the band dose for the
    kidneys (this card then stands in for the renal-dose card), else only its removal."""
    route = forbidden_injection(order, a.drug)
    if route is None:
        return None
    as_ordered = f" ({order.bolus_text!r})" if route not in NOT_IV_INJECTIONS else ""
    lines = [
        f"**Ordered:** {describe_order(order)}, {route}{as_ordered}",
        f"**Label:** {a.drug} is given by IV infusion only, {IV_INFUSION_ONLY[a.drug]}.",
    ]
    reason = f"{a.drug} ordered {route}: the label allows IV infusion only"
    proposals: list = [StopOrderProposal(f"Remove the {a.drug} order", order.id, reason)]
    rd = a.dose
    if rd is not None and rd.dose_mg and not rd.not_recommended:
        lines += [
            f"**Phase:** {a.how}.",
            f"**IV dose for the kidneys ({rd.phase}, {rd.band}):** {_band_long(rd)}. Calculation: {rd.calculation}.",
            *inputs_block(rd.inputs),
        ]
        label = f"Change to IV {a.drug} {_band_long(rd)}"
        proposals.insert(0, band_proposal(label, rd, order, replaces=order.id, recommended=True))
    elif a.cannot is not None:
        lines.append("**IV dose for the kidneys cannot be computed:** " + "; ".join(a.cannot.reasons) + ".")
    return Finding(
        topic="administration-route",
        indicator="critical",
        summary=f"{a.drug.capitalize()} ordered {route}: do not give, IV infusion only (label)",
        detail="\n".join(lines),
        sources=cite(f"{a.drug}-label"),
        proposals=tuple(proposals),
        override_reasons=("specialist-directed", "already-addressed"),
        order_id=order.id,
        key=f"administration-route|{order.id}",
    )


def label_dose_finding(order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy) -> Finding | Gap | None:
    """Warning: letermovir or maribavir ordered at another dose than the label's.  Only where the
    standard dose applies: a co-medication that changes it is the drug-interaction card's."""
    if drug not in T.FIXED_DOSE_DRUGS:
        return None
    unreadable = _unreadable(order)
    if unreadable:
        return Gap("ordered dose", unreadable, ("order",), f"{drug}-label")
    standard = T.FIXED_DOSE_DRUGS[drug].standard
    rd = renal_dose(drug, "induction", facts, policy)  # the fixed dose, for the co-medications on record
    if not isinstance(rd, RenalDose) or (rd.dose_mg, rd.interval_hours) != (standard.mg, standard.interval_hours):
        return None
    if matches_band(order, rd, facts, policy):
        return None
    direction, amount = _compared(order, rd, facts, "the label")
    label = f"{fmt(rd.dose_mg)} mg {rd.schedule}"
    partners = [display_name(a.group) for a in T.FIXED_DOSE_DRUGS[drug].adjustments]
    proposal = band_proposal(f"Change to {drug} {label}", rd, order, replaces=order.id, recommended=True)
    return Finding(
        topic="label-dose",
        indicator="warning",
        summary=f"{drug.capitalize()} {_ordered_short(order, rd)} {direction}: the label dose is {label} ({amount})",
        detail="\n".join([
            f"**Ordered:** {describe_order(order)}",
            f"**Label dose:** {label} (no renal dose adjustment is encoded for it). None of the "
            f"co-medications that change it ({', '.join(partners)}) is active on record or drafted.",
        ]),
        sources=cite(f"{drug}-label"),
        proposals=(proposal,),
        override_reasons=("dose-confirmed-id-pharmacy", "patient-specific-regimen", "specialist-directed"),
        order_id=order.id,
        key=f"label-dose|{order.id}",
    )


def enteral(order: MedicationOrder) -> bool:
    """Given by mouth or through a feeding tube."""
    return order.route == "oral" or order.route_text == "enteral tube"


def oral_solution(order: MedicationOrder) -> bool:
    """An oral solution (valganciclovir's 50 mg/mL): given in mg, never counted in tablets."""
    return order.dose_form == "solution" and order.route != "iv"


def valganciclovir_not_recommended(order: MedicationOrder, on_dialysis: bool) -> str:
    """A summary's words for valganciclovir where its label recommends no tablets: the tablets; an oral solution
    is off the guideline's dose on dialysis (Kotton 2025), and not recommended off it."""
    if not oral_solution(order):
        return "Valganciclovir tablets not recommended"
    return "Valganciclovir oral solution " + ("off the guideline's dose" if on_dialysis else "not recommended")


def oral_ganciclovir_finding(order: MedicationOrder, drug: str) -> Finding | None:
    """Warning: ganciclovir ordered by mouth or tube.  Its label's doses are IV, and valganciclovir's
    label: not interchangeable 1:1 with oral ganciclovir; no dose is proposed for a product the labels do
    not dose."""
    if drug != "ganciclovir" or not enteral(order):
        return None
    return Finding(
        topic="administration-route",
        indicator="warning",
        summary="Ganciclovir ordered by mouth or tube: not interchangeable 1:1 with valganciclovir; its label doses are IV",
        detail="\n".join([
            f"**Ordered:** {describe_order(order)}",
            "**Labels:** the ganciclovir doses and renal bands are for IV infusion; valganciclovir (the oral "
            "prodrug) is not interchangeable 1:1 with oral ganciclovir. This order is not checked against a band: "
            "if valganciclovir was meant, order it by name and its dose for the kidneys is checked.",
        ]),
        sources=cite("ganciclovir-label", "valganciclovir-label"),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=order.id,
        key=f"administration-route|{order.id}",
    )


def tablets_through_tube_finding(order: MedicationOrder, drug: str) -> Finding | None:
    """Warning: valganciclovir tablets ordered through a feeding tube, which means crushing them (the
    label: do not break or crush the tablets)."""
    if drug != "valganciclovir" or order.route_text != "enteral tube" or order.dose_form != "tablet":
        return None
    return Finding(
        topic="administration-route",
        indicator="warning",
        summary="Valganciclovir tablets ordered through a feeding tube: the label says do not break or crush them",
        detail="\n".join([
            f"**Ordered:** {describe_order(order)}, through a feeding tube",
            "**Label:** take with food; do not break or crush the tablets. Valganciclovir also comes as an oral "
            "solution; IV ganciclovir, dosed for the kidneys, is the alternative when nothing can be given by mouth.",
        ]),
        sources=cite("valganciclovir-label"),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=order.id,
        key=f"administration-route|{order.id}",
    )


def infusion_time_finding(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> Finding | None:
    """Warning: a foscarnet induction dose ordered to run faster than its label says.  Only a stated
    infusion time of one of the label's two induction regimens is checked (dose_tables)."""
    minutes = order.infusion_minutes
    per_kg = ordered_mg_per_kg(order, facts)
    label = label_infusion("foscarnet", per_kg, order.interval_hours, policy.dose_tolerance_fraction)
    if minutes is None or label is None or minutes >= label.minimum_minutes:
        return None
    regimens = "; ".join(
        f"{fmt(t.mg_per_kg)} mg/kg every {fmt(t.interval_hours)} h {t.words}" for t in T.FOSCARNET_INFUSION_TIMES
    )
    inputs = [f"Infusion time {fmt(minutes, 1)} min (the order's timing.repeat.duration)"]
    if order.mg_per_kg is None and order.dose_mg is not None and facts.dosing_weight is not None:
        inputs += [
            f"Dose per kg: {fmt(order.dose_mg, 1)} mg / {fmt(facts.dosing_weight.kg, 2)} kg = {fmt(per_kg, 1)} mg/kg",
            dosing_weight_line(facts.dosing_weight),
        ]
    return Finding(
        topic="infusion-time",
        indicator="warning",
        summary=(f"Foscarnet {fmt(per_kg, 1)} mg/kg ordered over {fmt(minutes, 1)} min: the label gives "
                 f"{fmt(label.mg_per_kg)} mg/kg q{fmt(label.interval_hours)}h {label.words}"),
        detail="\n".join([
            f"**Ordered:** {describe_order(order)}, infused over {fmt(minutes, 1)} min",
            f"**Label (induction):** {regimens}.",
            *inputs_block(inputs),
        ]),
        sources=cite("foscarnet-label"),
        override_reasons=("specialist-directed", "already-addressed"),
        order_id=order.id,
        key=f"infusion-time|{order.id}",
    )


def _valganciclovir_no_tablets(order: MedicationOrder, a: DoseAssessment, facts, policy) -> Finding:
    iv = renal_dose("ganciclovir", a.phase, facts, policy)
    crcl = _crcl_words(facts, a.dose)
    at = "on dialysis" if facts.conditions.renal_replacement == "dialysis" else f"at {crcl}"
    what = valganciclovir_not_recommended(order, at == "on dialysis")
    lines = [
        f"**Ordered:** {describe_order(order)}",
        f"**Label ({a.dose.band}):** valganciclovir {a.dose.not_recommended}.",
    ]
    proposals = ()
    c = facts.conditions
    ruled_out = "resistance" if c.resistant_to("ganciclovir") else "intolerance" if c.ganciclovir_intolerance else None
    # IV ganciclovir already ordered, or to be: one valganciclovir draft is changed to it, a readable one
    # in induction before a maintenance one, else the first listed.
    ganciclovir = current_orders(facts, "ganciclovir", but=order.id)
    drafted = enumerate(d for d in (*facts.drafts, order) if cmv_drug(d) == "valganciclovir")
    _, first = min(drafted, key=lambda i_d: (
        bool(_unreadable(i_d[1])), phase_by_interval("valganciclovir", i_d[1], facts)[0] != "induction", i_d[0]))
    later = order.is_draft and first.id != order.id
    # Valganciclovir on record is not recommended either: it stops with the change (or the removal), but
    # for a later draft's removal: the card changing the first draft stops it.
    on_record = () if later and not ganciclovir else tuple(
        m for m in facts.active_medications if cmv_drug(m) == "valganciclovir" and m.id != order.id)
    also = tuple(discontinuation(m.id, "ganciclovir") for m in on_record)
    if (ganciclovir or later) and not ruled_out:
        # The draft goes: it is not made a second ganciclovir order.
        if ganciclovir:
            why = "IV ganciclovir already ordered"
            summary = f"{what} {at}: {why}; {'remove this draft' if order.is_draft else 'stop it'}"
            lines.append(f"**IV ganciclovir already ordered:** {list_orders(ganciclovir)}: no second ganciclovir "
                         "order is proposed.")
        else:
            # Not "the other becomes IV ganciclovir": its card may not show (order-select), may have no dose
            # to propose, or may switch it to another drug.
            why = "another valganciclovir draft is ordered"
            summary = f"{what} {at}: {why}; remove this one"
            lines.append(f"**Another valganciclovir draft:** {describe_order(first)}: its own card (when that draft "
                         "is checked) proposes what replaces it; no second order is proposed here.")
        verb = "Remove" if order.is_draft else "Discontinue"
        proposals = (StopOrderProposal(f"{verb} the valganciclovir order", order.id, f"not recommended {at}; {why}",
                                       also=also),)
    elif ruled_out:
        # IV ganciclovir is no way out: the alternative-therapy card proposes what is.
        summary = f"{what} {at}; ganciclovir {ruled_out} documented: not IV ganciclovir"
        lines.append(f"**Documented ganciclovir {ruled_out}:** IV ganciclovir is not proposed; see the alternative therapy.")
    elif isinstance(iv, RenalDose) and iv.dose_mg:
        summary = f"{what} {at}: use IV ganciclovir {_band_short(order, iv)}"
        lines.append(
            f"**IV ganciclovir instead ({a.phase}, {iv.band}):** {_band_long(iv)}. Calculation: {iv.calculation}."
        )
        # A draft is changed into it; an order on record is discontinued as IV ganciclovir is ordered.
        change = band_proposal(f"{'Change' if order.is_draft else 'Switch'} to IV ganciclovir {_band_long(iv)}", iv,
                               order, replaces=order.id if order.is_draft else None, recommended=True)
        proposals = (replace(change, also=also if order.is_draft else (discontinuation(order.id, "ganciclovir"), *also)),)
    else:
        summary = f"{what} {at}: use IV ganciclovir (dose needs data)"
        reasons = "; ".join(iv.reasons) if isinstance(iv, CannotDose) else "not computable"
        lines.append(f"**IV ganciclovir dose cannot be computed:** {reasons}.")
    if on_record and proposals:
        lines.append(also_on_record(on_record, "not recommended either", "the suggestion here"))
    lines += [
        f"**Phase:** {a.how}.",
        *(() if ruled_out else dialysis_alternative(a.dose)),  # the oral solution is valganciclovir too
        *inputs_block(iv.inputs if isinstance(iv, RenalDose) else a.dose.inputs),
        "",
        "Source: valganciclovir and ganciclovir US prescribing information (renal tables); Kotton 2025.",
    ]
    return Finding(
        topic="renal-dose-adjustment",
        indicator="warning",
        summary=summary,
        detail="\n".join(lines),
        sources=cite("valganciclovir-label", "ganciclovir-label", "kotton-2025"),
        proposals=proposals,
        override_reasons=("dialysis-nephrology", "dose-confirmed-id-pharmacy", "patient-specific-regimen"),
        order_id=order.id,
        key=f"renal-dose-adjustment|{order.id}",
    )


def as_ordered(rd: RenalDose, order: MedicationOrder | None) -> RenalDose:
    """The band dose as `order` gives its drug: for a valganciclovir oral solution, in mg, with no tablet count
    (nor the tablets' instruction, which follows the count); any other order's as it is."""
    if (rd.drug != "valganciclovir" or rd.unit_count is None or order is None or cmv_drug(order) != rd.drug
            or not oral_solution(order)):
        return rd
    return replace(rd, unit_count=None, unit_strength_mg=None,
                   calculation=f"{fmt(rd.dose_mg)} mg {rd.schedule}, as the oral solution ordered")


def band_proposal(
    label: str,
    rd: RenalDose,
    order: MedicationOrder | None = None,
    replaces: str | None = None,
    recommended: bool = False,
    tolerance: float = Policy.dose_tolerance_fraction,
    duration_days: float | None = None,
) -> DoseProposal:
    """A band dose for an order; tablets are counted only when the order being updated was, and a
    fixed-dose drug (letermovir, maribavir: oral or IV at the same dose) keeps the order's route.
    `tolerance`: the policy's, to tell whether the order's own infusion time is the label's."""
    same = order is not None and order.ingredient == rd.drug
    rd = as_ordered(rd, order)
    counted = same and order.unit_count is not None
    infusion = _kept_infusion(order, rd, tolerance) if same else None
    proposal = dose_proposal(
        rd, label, replaces=replaces, recommended=recommended, tablets=counted, infusion_minutes=infusion,
        duration_days=duration_days,
    )
    if same and order.route and rd.drug in T.FIXED_DOSE_DRUGS:
        return replace(proposal, route=order.route)
    return proposal


def _kept_infusion(order: MedicationOrder, rd: RenalDose, tolerance: float) -> float | None:
    """The order's infusion time, kept in a proposal of the same drug: only for an IV infusion (not a
    push) that the label does not call too fast (foscarnet induction), at a dose no higher than ordered
    (so no faster), and not shorter than the label's time for the proposed dose."""
    minutes = order.infusion_minutes
    if minutes is None or order.route != "iv" or order.bolus_text or rd.dose_mg is None:
        return None
    if order.dose_mg is None or rd.dose_mg > order.dose_mg:
        return None
    # The order's mg/kg: as ordered, or through the dosing weight the band dose was computed from.
    ordered_per_kg = order.mg_per_kg or (order.dose_mg * rd.mg_per_kg / rd.dose_mg if rd.mg_per_kg else None)
    for label in (label_infusion(rd.drug, ordered_per_kg, order.interval_hours, tolerance),
                  label_infusion(rd.drug, rd.mg_per_kg, rd.interval_hours)):
        if label is not None and minutes < label.minimum_minutes:
            return None
    return minutes


def _compared(order: MedicationOrder, rd: RenalDose, facts: ClinicalFacts, label: str) -> tuple[str, str]:
    """(direction, how much) of an order that is not the label's dose: 'too high', '2x the band's daily dose'."""
    ordered_daily, label_daily = _daily(order, rd, facts)
    ratio = ordered_daily / label_daily if label_daily else None
    if ratio is None or abs(ratio - 1) <= 0.01:
        return f"differs from {label}", "same daily dose, different interval"
    if ratio > 1:
        return "too high", f"{fmt(ratio, 1)}x {label}'s daily dose"
    return "too low", f"{fmt(ratio * 100, 0)}% of {label}'s daily dose"


def _daily(order: MedicationOrder, rd: RenalDose, facts: ClinicalFacts) -> tuple[float, float]:
    """Ordered and band amounts per day, per kg when the order is per kg."""
    band_per_day = (rd.doses_per_week or 0) / 7
    ordered_per_day = 24.0 / order.interval_hours
    if order.mg_per_kg is not None and rd.mg_per_kg is not None:
        return order.mg_per_kg * ordered_per_day, rd.mg_per_kg * band_per_day
    return (order.dose_mg or 0) * ordered_per_day, (rd.dose_mg or 0) * band_per_day


def _crcl_words(facts: ClinicalFacts, rd: RenalDose) -> str:
    if facts.conditions.renal_replacement == "dialysis":
        return "dialysis"  # the band is the labels' dialysis row, not a clearance
    if rd.drug == "foscarnet":
        return f"CrCl {fmt(facts.renal.crcl_ml_min_per_kg)} mL/min/kg"
    return f"CrCl {fmt(facts.renal.crcl_ml_min, 1)} mL/min"


def _tablets(count: float | None) -> str:
    if count is None:
        return ""
    return f" ({fmt(count)} tablet{'s' if count != 1 else ''})"


def _ordered_short(order: MedicationOrder, rd: RenalDose) -> str:
    interval = fmt_interval(order.interval_hours)
    if order.mg_per_kg is not None:
        mg = f" ({fmt(order.dose_mg)} mg)" if order.dose_mg is not None else ""
        return f"{fmt(order.mg_per_kg, 3)} mg/kg{mg} {interval}"
    return f"{fmt(order.dose_mg)} mg{_tablets(order.unit_count)} {interval}"


def _band_short(order: MedicationOrder, rd: RenalDose) -> str:
    interval = fmt_interval(rd.interval_hours, rd.schedule)
    count = _tablets(rd.unit_count) if order.unit_count is not None else ""
    if rd.mg_per_kg is not None:
        return f"{fmt(rd.dose_mg)} mg ({fmt(rd.mg_per_kg, 3)} mg/kg) {interval}"
    return f"{fmt(rd.dose_mg)} mg{count} {interval}"


def _band_long(rd: RenalDose) -> str:
    if rd.not_recommended:
        return "not recommended"
    if rd.mg_per_kg is not None:
        return f"{fmt(rd.dose_mg)} mg ({fmt(rd.mg_per_kg, 3)} mg/kg) {rd.schedule}"
    count = f" ({fmt(rd.unit_count)} x {fmt(rd.unit_strength_mg)} mg tablet)" if rd.unit_count else ""
    return f"{fmt(rd.dose_mg)} mg{count} {rd.schedule}"


def _band_line(rd: RenalDose) -> str:
    label = f"{rd.phase}{_regimen_words(rd.regimen)}"
    if rd.not_recommended:
        return f"{label}: {rd.not_recommended}"
    per = f"{fmt(rd.mg_per_kg, 3)} mg/kg" if rd.mg_per_kg is not None else f"{fmt(rd.dose_mg)} mg"
    return f"{label} {per} {rd.schedule}"


def _regimen_words(regimen: str | None) -> str:
    if regimen is None:
        return ""
    words = {"60q8h": "60 mg/kg q8h regimen", "90q12h": "90 mg/kg q12h regimen", "90/day": "90 mg/kg/day regimen", "120/day": "120 mg/kg/day regimen"}
    return f" ({words.get(regimen, regimen)})"


def _order_interval(order: MedicationOrder) -> str:
    if not order.interval_hours:
        return "interval unknown"
    return f"every {fmt(order.interval_hours, 1)} h"


# ---------------------------------------------------------------------------------------------
# Duplicate therapy


def duplicate_findings(
    order: MedicationOrder, drug: str, facts: ClinicalFacts, checked_ids: frozenset[str],
    proposed: frozenset[tuple] = frozenset(), ruled_out: frozenset[str] = frozenset(),
    not_advised: frozenset[str] = frozenset(), prophylaxis: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Two systemic anti-CMV agents at once (the target and active orders or other drafts).
    `proposed`: (dose, interval) of its drug other cards propose for the target: the dose it is to give
    (else its own); one equal to the order on record makes the target a copy of it, another a dose change.  `ruled_out`: drugs not to be given at all (the
    ganciclovir family, with counts below the label; cidofovir or foscarnet, when the kidneys rule the
    target out): a checked target and another checked target or an order on record, both of them, are
    no duplicate to resolve, since the target's critical card stops them (a copy of the target has none:
    the duplicate card stays the one that removes it).
    `not_advised`: drugs the kidneys rule out (valganciclovir tablets below CrCl 10 or on dialysis): no
    card steps down to them (the renal card says what to give instead).
    `prophylaxis`: the ids of ganciclovir-family orders given as prophylaxis (regimens.therapy_state): beside
    letermovir, two prophylaxis agents, not treatment replacing prophylaxis.

    One finding per other drug, listing its orders; a pair of checked targets is reported once, from
    the target with the smaller id.
    """
    by_drug: dict[str, list[MedicationOrder]] = {}
    for other in other_orders(facts, order):
        other_drug = cmv_drug(other)
        if other_drug is None or not _overlap(order, other):
            continue
        if other.id in checked_ids and other.id < order.id:
            continue  # reported from the other target
        pair = {drug, other_drug}
        if pair <= ruled_out and (other.id in checked_ids or not other.is_draft):
            continue
        if "maribavir" in pair and pair & {"ganciclovir", "valganciclovir"}:
            continue  # antagonism: reported as a drug interaction
        if "foscarnet" in pair and pair & GANCICLOVIR_FAMILY and "cns" in facts.conditions.cmv_disease_sites:
            continue  # the brief's combination for CNS disease (the combination card adds foscarnet to the course)
        by_drug.setdefault(other_drug, []).append(other)
    # CMV disease (but HIV retinitis alone, whose regimen is oral): IV ganciclovir comes first (clinical brief).
    # Not with the family on record already: a valganciclovir draft then is the step-down from that course.
    c = facts.conditions
    iv_first = (bool(c.cmv_disease_sites) and not c.hiv_retinitis_only
                and not any(cmv_drug(m) in GANCICLOVIR_FAMILY for m in facts.active_medications))
    found = (_duplicate(order, drug, others, other_drug, proposed, not_advised, iv_first, prophylaxis)
             for other_drug, others in by_drug.items())
    return [f for f in found if f is not None]


def _stop_each(orders: list[MedicationOrder], label: str, reason: str, recommended: bool = False) -> list[StopOrderProposal]:
    return [
        StopOrderProposal(f"{'Remove' if o.is_draft else 'Discontinue'} {label}", o.id, reason, recommended)
        for o in orders[:SHOWN_ORDERS]
    ]


def _duplicate(
    order: MedicationOrder, drug: str, others: list[MedicationOrder], other_drug: str, proposed: frozenset[tuple],
    not_advised: frozenset[str], iv_first: bool = False, prophylaxis: frozenset[str] = frozenset(),
) -> Finding | None:
    key = f"duplicate-therapy|{order.id}|{other_drug}"
    orders_line = f"**Orders:** {describe_order(order)}; {list_orders(others)}."
    if {drug, other_drug} == {"ganciclovir", "valganciclovir"}:
        # IV ganciclovir -> oral valganciclovir is the brief's step-down: a switch, not a duplicate.
        active = [o for o in others if not o.is_draft]
        if not active and iv_first:
            # Drafted to run at the same time for CMV disease: the IV phase first, the tablets after it.
            tablets = [order] if drug == "valganciclovir" else others
            return Finding(
                topic="duplicate-therapy",
                indicator="warning",  # signed together, both would be given: twice the ganciclovir
                summary="CMV disease: IV ganciclovir first; valganciclovir follows after clinical improvement (not both at once)",
                detail=(
                    f"{orders_line}\n\nFor CMV disease the brief gives IV ganciclovir for the first 3-5 days, then, after "
                    "clinical improvement, oral valganciclovir. Valganciclovir is converted to ganciclovir: give one or "
                    "the other, not both. Order the valganciclovir at the step-down (or dated to start after the IV phase)."
                ),
                sources=cite("clinical-brief", "valganciclovir-label"),
                proposals=tuple(_stop_each(tablets, "valganciclovir", "IV ganciclovir first", recommended=len(tablets) == 1)),
                override_reasons=("already-addressed", "patient-specific-regimen"),
                order_id=order.id,
                key=key,
            )
        if active:
            old, old_drug, new_drug = active, other_drug, drug  # the active orders are being replaced
        else:  # drafts to run at the same time: ganciclovir first, then valganciclovir
            old, old_drug, new_drug = ([order], drug, other_drug) if drug == "ganciclovir" else (others, other_drug, drug)
        if new_drug in not_advised:
            return None  # no step-down to tablets the kidneys rule out: stopping the IV course would leave nothing
        return Finding(
            topic="duplicate-therapy",
            # A step-down from a course on record is the brief's switch (info); two drafts signed together would
            # both be given, twice the ganciclovir (a warning, as two orders of one drug are).
            indicator="info" if active else "warning",
            summary=f"Switch {old_drug} to {new_drug}: stop {old_drug} when {new_drug} starts (do not give both)",
            detail=(
                f"{orders_line}\n\nIV ganciclovir followed by oral valganciclovir is the usual step-down after "
                "clinical improvement (clinical brief). Valganciclovir is converted to ganciclovir: give one or "
                "the other, not both."
            ),
            sources=cite("clinical-brief", "valganciclovir-label"),
            proposals=tuple(_stop_each(old, old_drug, f"replaced by {new_drug}", recommended=len(old) == 1)),
            override_reasons=("already-addressed", "patient-specific-regimen"),
            order_id=order.id,
            key=key,
        )
    doses = {(o.dose_mg, o.interval_hours) for o in (order, *others)}
    on_record = {(o.dose_mg, o.interval_hours) for o in others}
    readable = all(None not in dose for dose in doses)
    # The dose the draft is to give: a dose another card proposes for it, else its own.  Of alternatives (the renal
    # card's induction or maintenance), the draft is a copy of the order on record only if each of them is.
    to_give = proposed or {(order.dose_mg, order.interval_hours)}
    if drug == other_drug and order.is_draft and all(not o.is_draft for o in others) and readable and not to_give <= on_record:
        # A draft of the same drug at another readable dose or interval is a dose change (a step-down
        # to maintenance, a renal adjustment): the current order stops when it starts.  Whether the
        # change is due is the clinician's (and the other cards'): the stop is offered, not recommended.
        return Finding(
            topic="duplicate-therapy",
            indicator="info",
            summary=f"{drug.capitalize()} dose change: stop the current {drug} order when this one starts",
            detail=f"{orders_line}\n\nGive one {drug} order at a time: the new dose replaces the current one.",
            sources=cite(f"{drug}-label"),
            proposals=tuple(_stop_each(others, f"the current {drug} order", "replaced by the new dose")),
            override_reasons=("already-addressed", "patient-specific-regimen"),
            order_id=order.id,
            key=key,
        )
    if "letermovir" in (drug, other_drug) and {drug, other_drug} & set(TREATMENT_AGENTS):
        treatment = other_drug if drug == "letermovir" else drug
        letermovir_orders = [order] if drug == "letermovir" else others
        if all(o.id in prophylaxis for o in (others if drug == "letermovir" else [order])):
            return _two_prophylaxis_agents(order, drug, others, other_drug, orders_line, key)
        detail = (
            f"{orders_line}\n\nLetermovir is prophylaxis only. Once CMV infection or disease needs treatment, the "
            "treatment regimen applies whatever prophylaxis was used; letermovir adds nothing to it (clinical brief)."
        )
        stops = tuple(_stop_each(letermovir_orders, "letermovir", f"{treatment} treatment replaces prophylaxis", True))
        if drug == "letermovir":  # prophylaxis added on top of treatment: more likely an error
            summary, indicator = f"Letermovir ordered while {treatment} is ordered: two anti-CMV agents at once", "warning"
            reasons = ("patient-specific-regimen", "specialist-directed", "already-addressed")
        else:
            summary, indicator = f"{treatment.capitalize()} treatment replaces letermovir prophylaxis: stop letermovir", "info"
            reasons = ("already-addressed", "patient-specific-regimen")
        return Finding(
            topic="duplicate-therapy",
            indicator=indicator,
            summary=summary,
            detail=detail,
            sources=cite("letermovir-label", "clinical-brief"),
            proposals=stops,
            override_reasons=reasons,
            order_id=order.id,
            key=key,
        )
    same = drug == other_drug
    count = f"{len(others)} other {drug} orders" if len(others) > 1 else f"{others[0].describe()}"
    summary = (
        f"Second {drug} order: {count} already ordered"
        if same
        else f"Two systemic anti-CMV agents at once: {drug} and {other_drug}"
    )
    proposals = [
        StopOrderProposal(f"Remove this {drug} order", order.id, "duplicate anti-CMV therapy"),
        *_stop_each(others, f"the other {other_drug} order", "duplicate anti-CMV therapy"),
    ]
    return Finding(
        topic="duplicate-therapy",
        indicator="warning",
        summary=summary,
        detail=orders_line
        + "\n\n"
        + (
            "If this order replaces the other one (a dose change), stop the other order."
            if same
            else "Combination anti-CMV therapy is reserved for CNS disease (ganciclovir plus foscarnet) "
            "or specialist-directed resistant disease; otherwise one agent at a time (clinical brief)."
        ),
        sources=cite("clinical-brief", f"{drug}-label"),
        proposals=tuple(proposals),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=order.id,
        key=key,
    )


TWO_PROPHYLAXIS_AGENTS = (
    "both are CMV prophylaxis, and the brief weighs them as alternatives: letermovir is a preferred prophylaxis agent "
    "in high-risk transplant recipients (lower toxicity than ganciclovir)"
)


def _two_prophylaxis_agents(
    order: MedicationOrder, drug: str, others: list[MedicationOrder], other_drug: str, orders_line: str, key: str
) -> Finding:
    """Letermovir and a ganciclovir-family prophylaxis at once (`drug` the target's, `other_drug` the others'):
    the draft is taken to replace the orders on record (a switch of prophylaxis, either way), whose stop is
    offered; drafted together, which to keep is the clinician's (text only)."""
    on_record = [o for o in others if not o.is_draft]
    return Finding(
        topic="duplicate-therapy",
        indicator="info",
        summary=(f"{drug.capitalize()} prophylaxis in place of {other_drug}: stop the {other_drug} when the {drug} starts"
                 if on_record else f"Two CMV prophylaxis agents drafted: {drug} and {other_drug}: give one"),
        detail=f"{orders_line}\n\n**Why not together:** {TWO_PROPHYLAXIS_AGENTS}: give one at a time.",
        sources=cite("clinical-brief", "letermovir-label"),
        proposals=tuple(_stop_each(on_record, other_drug, f"replaced by {drug} prophylaxis")),
        override_reasons=("already-addressed", "patient-specific-regimen", "specialist-directed"),
        order_id=order.id,
        key=key,
    )


def _overlap(a: MedicationOrder, b: MedicationOrder) -> bool:
    """Do two orders run at the same time?  Yes unless their dates show one ends before the other starts."""
    if a.end is not None and b.start is not None and a.end <= b.start:
        return False
    if b.end is not None and a.start is not None and b.end <= a.start:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Prophylaxis is not treatment


# What each prophylaxis order is, for the card; and the treatment it should give way to.
