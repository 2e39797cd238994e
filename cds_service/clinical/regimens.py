"""Anti-CMV therapy on record, and the treatment regimens the guidance proposes.

Reads which anti-CMV orders a patient is on (treatment, maintenance or prophylaxis, and since when),
and writes the regimen cards: the first-line regimen when CMV disease or viraemia needing
pre-emptive therapy has no treatment, immunosuppression reduction, and the alternatives when
ganciclovir (or a drug documented resistant) cannot be used.  Every dose comes from
`renal_dosing.renal_dose` (the label tables the order-safety checks use too); this module only
chooses the drug and phase and words the card.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Collection, Iterable, Literal

from cds_service.clinical import renal_dosing
from cds_service.clinical.dose_tables import FOSCARNET_HYDRATION, VALGANCICLOVIR_DIALYSIS_GUIDELINE
from cds_service.clinical.drugs import (
    GANCICLOVIR_FAMILY,
    TREATMENT_AGENTS,
    also_on_record,
    alternatives_ordered,
    already_ordered_lines,
    cidofovir_course,
    cmv_drug,
    co_medications,
    describe_order,
    display_name,
    groups_of,
    in_group,
    running_on_record,
)
from cds_service.clinical.findings import (
    ConsultProposal,
    DoseProposal,
    Finding,
    LabOrderProposal,
    Proposal,
    StopOrderProposal,
    acted_on,
    carried_stops,
    discontinuation,
)
from cds_service.clinical.interactions import CNI_MARIBAVIR
from cds_service.clinical.inputs import below, clip, current, fmt, treatment_level_viraemia, why_not_current
from cds_service.clinical.missing_data import no_dose_words, retrieved
from cds_service.clinical.renal_dosing import (
    CannotDose,
    Phase,
    RenalDose,
    dialysis_alternative,
    dialysis_solution_doses,
    dose_proposal,
)
from cds_service.clinical.sources import cite, sot_guideline
from cds_service.clinical.therapy import (
    above_its_band,
    as_ordered,
    assess_dose,
    oral_solution,
    valganciclovir_not_recommended,
)
from cds_service.clinical.toxicity import BLOOD_COUNT_LIMITS, count_words, foscarnet_electrolytes_block
from cds_service.facts.conditions import INTOLERANCE, mutation_label, resistant_label
from cds_service.facts.medications import RECENT_ORDER_DAYS
from cds_service.facts.model import (
    RESISTANCE_GENES,
    ClinicalFacts,
    ConditionEvidence,
    ConditionFacts,
    MedicationOrder,
    ViralLoadResult,
)
from cds_service.frozen import frozen
from cds_service.policy import Policy

POST_TRANSPLANT = frozenset({"sot", "hsct"})  # maribavir's labelled population

# The foscarnet induction regimen the guidance proposes.  The label offers 90 mg/kg q12h or
# 60 mg/kg q8h; q12h is proposed for fewer infusions (both are in the label's renal table).
FOSCARNET_INDUCTION = "90q12h"

# The minimum treatment course (clinical brief; resistance definitions: "at least 2 weeks").
MIN_COURSE_DAYS = 14
# HIV CMV retinitis: valganciclovir induction length (label; clinical brief).
RETINITIS_INDUCTION_DAYS = 21

DRUG_WORDS = {
    "ganciclovir": "IV ganciclovir",
    "valganciclovir": "oral valganciclovir",
    "foscarnet": "IV foscarnet",
    "cidofovir": "IV cidofovir",
    "maribavir": "oral maribavir",
    "letermovir": "letermovir",
}

SITE_WORDS = {
    "retinitis": "CMV retinitis",
    "gi": "CMV GI disease (colitis)",
    "pneumonitis": "CMV pneumonitis",
    "hepatitis": "CMV hepatitis",
    "cns": "CMV encephalitis/myelitis",
    "other": "CMV end-organ disease",
}
_SITE_ORDER = ("cns", "pneumonitis", "gi", "retinitis", "hepatitis", "other")

IMMUNOSUPPRESSANT_CLASSES = ("immunosuppressant", "calcineurin-inhibitor", "mtor-inhibitor", "corticosteroid")

# ---------------------------------------------------------------------------------------------
# Anti-CMV orders on record

TherapyKind = Literal["treatment", "maintenance", "prophylaxis"]


@frozen
class TherapyOrder:
    """An anti-CMV order and what it is for."""

    order: MedicationOrder
    drug: str
    kind: TherapyKind
    phase: Phase | None  # None: letermovir, or a dose/schedule that could not be read
    phase_basis: str  # how the phase was read, for the card
    start: date | None  # start of the treatment course it continues (IV to oral step-down)
    begins: date | None  # this order's own start (a draft without one starts today)

    def days_on(self, now: date) -> int | None:
        return (now - self.start).days if self.start else None

    def begun(self, now: date) -> bool:
        """False for an order that begins later (an order set's next phase); True with no start on record."""
        return self.begins is None or self.begins <= now

    def days_words(self, now: date, dated: bool = True) -> str:
        """How long the course has run, for a card: "12 days (since 2026-11-14)" ("12 days" when not `dated`: a
        line that gives the start already), or "from 2026-12-16 (not begun)" for an order that begins later;
        "" with no start on record."""
        if not self.begun(now):
            return f"from {self.begins.isoformat()} (not begun)"
        days = self.days_on(now)
        if days is None:
            return ""
        return f"{days} days" + (f" (since {self.start.isoformat()})" if dated else "")

    def given_to(self, today: date) -> date | None:
        """The last day an order on record has been given: today, or its end when that came first (an order left
        active past its end date ran to its end); None for a draft."""
        if self.order.is_draft:
            return None
        end = self.planned_end
        return end if end is not None and end < today else today

    @property
    def planned_end(self) -> date | None:
        """The last day of the order as written: its end date (FHIR's end is inclusive), or its start plus
        the planned duration less one (21 days from 1 November end on 21 November)."""
        order = self.order
        if order.end is not None:
            return order.end
        if order.duration_days is not None and self.begins is not None:
            try:
                return self.begins + timedelta(days=max(order.duration_days - 1, 0))
            except OverflowError:  # a duration past the calendar's end: no end to read
                return None
        return None

    @property
    def dose_day(self) -> date | None:
        """The day of the dose a cidofovir order that may have given one dose gave: a one-dose order's end;
        with only one of its dates on record, that date.  None for an order of several doses."""
        end = self.planned_end
        if end is None or self.begins is None:
            return end or self.begins
        return end if self.one_dose else None

    @property
    def one_dose(self) -> bool:
        """A cidofovir order for one dose: from its start to its end within one dosing interval, or, with
        no interval (a one-off order), on one day.  Cidofovir is often ordered dose by dose, so its end is
        that dose's, not the course's."""
        end, hours = self.planned_end, self.order.interval_hours
        if self.drug != "cidofovir" or end is None or self.begins is None:
            return False
        return (end - self.begins).days + 1 <= (hours / 24 if hours else 1)

    def describe(self) -> str:
        since = f" since {self.start.isoformat()}" if self.start else ", start date unknown"
        return f"{self.order.describe()} [{self.kind}]{since}"


@frozen
class TherapyState:
    active: tuple[TherapyOrder, ...]  # active anti-CMV orders on record
    ended: tuple[TherapyOrder, ...]  # completed or stopped ones
    drafts: tuple[TherapyOrder, ...]  # the hook's unsigned anti-CMV orders
    # A cidofovir course between doses: ordered dose by dose, its last order completed no longer ago than
    # the course gap and no anti-CMV treatment active.  The patient is on treatment (no card starts one,
    # the monitoring plan applies) though no order is there to change or stop.
    between_doses: tuple[TherapyOrder, ...] = ()

    @property
    def in_course(self) -> tuple[TherapyOrder, ...]:
        """The treatment the patient is on: the active courses, and a cidofovir course between doses."""
        return self.treating + self.between_doses

    @property
    def treating(self) -> tuple[TherapyOrder, ...]:
        """Active treatment (induction or maintenance): letermovir and prophylactic doses excluded."""
        return tuple(t for t in self.active if t.kind != "prophylaxis")

    @property
    def prophylaxis(self) -> tuple[TherapyOrder, ...]:
        return tuple(t for t in self.active if t.kind == "prophylaxis")

    def kin(self, t: TherapyOrder) -> tuple[TherapyOrder, ...]:
        """The other active orders on record of t's drug (of the ganciclovir family, for ganciclovir or
        valganciclovir), prophylaxis included: what a switch away from t, or a step-down, stops too."""
        family = GANCICLOVIR_FAMILY if t.drug in GANCICLOVIR_FAMILY else frozenset({t.drug})
        return tuple(o for o in self.active if o.drug in family and o.order.id != t.order.id)

    def on(self, drugs: Iterable[str], *, drafts: bool = True) -> tuple[TherapyOrder, ...]:
        """Active treatment orders (and, by default, drafts) of any of `drugs`."""
        wanted = frozenset(drugs)
        pool = self.treating + (self.drafts if drafts else ())
        return tuple(t for t in pool if t.drug in wanted and t.kind != "prophylaxis")


def therapy_state(facts: ClinicalFacts, policy: Policy) -> TherapyState:
    """The anti-CMV orders by course and kind: worked out once per evaluation (facts.once), for the guidance
    and for the order checks that ask what kind an order is."""
    return facts.once(("therapy_state",), lambda: _therapy_state(facts, policy), policy)


def _therapy_state(facts: ClinicalFacts, policy: Policy) -> TherapyState:
    record = [(o, d) for o in facts.medications if (d := cmv_drug(o))]
    drafts = [(o, d) for o in facts.drafts if (d := cmv_drug(o))]
    phases: dict[tuple, tuple[Phase | None, str]] = {}  # identical orders are read once

    def phase_of(order: MedicationOrder, drug: str) -> tuple[Phase | None, str]:
        key = (drug, order.dose_mg, order.mg_per_kg, order.interval_hours, order.unit_count, order.problems)
        if key not in phases:
            phases[key] = _phase(order, drug, facts, policy)
        return phases[key]

    phased = {o.id: phase_of(o, d) for o, d in (*record, *drafts)}
    # Treatment courses on record (not drafts: drafts start together, they continue nothing), newest first.
    courses = sorted(
        ((o, d) for o, d in record if d in TREATMENT_AGENTS and phased[o.id][0] != "maintenance" and o.start),
        key=lambda od: od[0].start,
        reverse=True,
    )
    treatment_starts = [o.start for o, d in (*record, *drafts) if d in TREATMENT_AGENTS and phased[o.id][0] != "maintenance"]
    active_ids = {o.id for o in facts.active_medications}
    today = facts.evaluated_at.date()

    def classify(order: MedicationOrder, drug: str, on_maintenance: bool = False) -> TherapyOrder:
        phase, basis = phased[order.id]
        # A draft without a start date starts when it is signed: today.
        begins = order.start or (today if order.is_draft else None)
        kind = _kind(order, drug, phase, treatment_starts, begins, facts.conditions, today, on_maintenance)
        if drug == "cidofovir" and begins:
            # One course from its first dose, weekly and every-2-weeks doses alike, as its renal and kidney
            # rules read it (drugs.cidofovir_course: orders no further apart than the policy's course gap).
            # Counted from orders known to belong to it (active, or with an end date): one whose end is not
            # on record may have ended long before.
            course = cidofovir_course(order, facts, policy.cidofovir_course_gap_days)
            start = min([begins, *(o.start for o in course if o.start and (o.end or o.active))])
        else:
            start = _course_start(order, begins, drug, courses) if kind == "treatment" and begins else begins
        return TherapyOrder(order, drug, kind, phase, basis, start, begins)

    active = tuple(classify(o, d) for o, d in record if o.id in active_ids)
    ended = tuple(classify(o, d) for o, d in record if o.id not in active_ids)
    # A draft renews maintenance that is on record (active, or lapsed among the orders read).
    on_maintenance = any(t.kind == "maintenance" and t.drug in GANCICLOVIR_FAMILY for t in (*active, *ended))
    # Between cidofovir doses: the newest cidofovir order gave one dose (or, a date not on record, may have),
    # was completed no longer ago than the course gap, and no anti-CMV treatment began since that dose
    # (another course started is what follows; one begun before it runs beside it).  A course stopped, or
    # completed over several doses, is over.
    last = max((t for t in ended if t.drug == "cidofovir" and (t.planned_end or t.begins)),
               key=lambda t: t.planned_end or t.begins, default=None)
    between = (
        last is not None and last.order.status == "completed" and last.dose_day is not None
        and 0 <= (today - last.dose_day).days <= policy.cidofovir_course_gap_days
        and not any(t.kind != "prophylaxis" and (t.begins is None or t.begins >= last.dose_day) for t in active)
    )
    return TherapyState(active, ended, tuple(classify(o, d, on_maintenance) for o, d in drafts), (last,) if between else ())


def _phase(order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy) -> tuple[Phase | None, str]:
    if drug == "letermovir":
        return None, "letermovir is a prophylaxis agent"
    if drug == "maribavir":
        return "induction", "maribavir is given as treatment"
    # The other treatment drugs are matched against the label's bands, as the order-safety checks do (the
    # band alone: which course an order belongs to is what this state works out), foscarnet's by its course
    # too, as they do (therapy.foscarnet_induction: a young course at a reduced daily dose is induction).
    assessed = assess_dose(order, drug, facts, policy, by_course=drug == "foscarnet")
    if assessed.unreadable:
        return None, "; ".join(assessed.unreadable)
    return assessed.phase, assessed.how


def _kind(
    order: MedicationOrder,
    drug: str,
    phase: Phase | None,
    treatment_starts: list[date | None],
    begins: date | None,
    conditions: ConditionFacts,
    today: date,
    on_maintenance: bool,
) -> TherapyKind:
    """`on_maintenance`: a ganciclovir-family order on record is maintenance (what a draft may renew)."""
    if drug not in TREATMENT_AGENTS:
        return "prophylaxis"
    if phase != "maintenance" or (drug == "cidofovir" and not conditions.hiv_retinitis):
        # Induction, or a dose that could not be read: counted as treatment, so the guidance never
        # proposes a second regimen on top of an order it could not read.  Cidofovir every 2 weeks
        # continues its treatment course (the label's schedule after 2 weekly doses): still treatment,
        # judged for resistance and course length like its first weeks; in HIV retinitis it is the
        # maintenance the retinitis card speaks of, as valganciclovir once daily is.
        return "treatment"
    # A maintenance-level ganciclovir or valganciclovir dose is maintenance after a treatment course
    # (any treatment-phase order starting no later), or when it starts at least a course after the CMV
    # disease began (room for an induction) and the disease began so long ago that the induction may
    # have ended before the orders read (a course plus RECENT_ORDER_DAYS), as in HIV retinitis on months
    # of maintenance.  Otherwise it is prophylaxis, and disease that began during it is a breakthrough
    # needing treatment.
    follows = any(s is None or order.start is None or s <= order.start for s in treatment_starts)
    disease_onset = conditions.cmv_disease_onset
    maintains = (
        disease_onset is not None and begins is not None
        and (begins - disease_onset).days >= MIN_COURSE_DAYS
        and (today - disease_onset).days >= MIN_COURSE_DAYS + RECENT_ORDER_DAYS
    ) or (
        # Outside transplant the reference gives the ganciclovir family no prophylaxis: beside CMV disease of
        # unknown onset, an order on record begun so long ago that an induction before it would have ended
        # before the orders read is its maintenance (HIV retinitis on months of it), not a prophylaxis to stop
        # for a new induction; so is a draft that renews such an order.  One begun more recently, or a draft
        # with none on record, is still judged (induction comes first).
        disease_onset is None and bool(conditions.cmv_disease_sites) and not conditions.populations & POST_TRANSPLANT
        and (on_maintenance if order.is_draft else begins is not None and (today - begins).days >= RECENT_ORDER_DAYS)
    )
    if drug in GANCICLOVIR_FAMILY and not (follows or maintains):
        return "prophylaxis"
    return "maintenance"


def _course_start(order: MedicationOrder, start: date, drug: str, courses) -> date:
    """When the course this order continues began: IV ganciclovir stepped down to valganciclovir is
    one course, so earlier ganciclovir-family treatment orders that ran up to (within a day of) this
    one's start count.  A switch to another drug starts a new course.  `courses`: newest first."""
    family = GANCICLOVIR_FAMILY if drug in GANCICLOVIR_FAMILY else frozenset({drug})
    for other, other_drug in courses:
        if other.id == order.id or other_drug not in family or other.start >= start:
            continue
        running = other.end is None and other.active
        if running or (other.end is not None and other.end >= start - timedelta(days=1)):
            start = other.start
    return start


# ---------------------------------------------------------------------------------------------
# Doses: every one from renal_dose, shown with its inputs


def no_further_dose(t: TherapyOrder) -> str:
    """What a card says of a course between doses it moves off: nothing to stop, no dose to give."""
    return f"Give no further {t.drug} dose: the course's last order ({t.order.id}) has ended, so none is stopped."


def next_dose_words(last_dose: TherapyOrder, gap_days: int) -> str:
    """How a course between doses goes on (the status and duplicate-therapy cards)."""
    return (f"{describe_order(last_dose.order)} ({last_dose.order.id}), completed; last dose {last_dose.dose_day.isoformat()}: "
            f"the course goes on with the next dose ordered within {gap_days} days of it (course gap, local policy)")


def duplicate_between_cidofovir_doses(target: TherapyOrder, last_dose: TherapyOrder, gap_days: int) -> Finding:
    """duplicate-therapy (warning, text only): another anti-CMV drug drafted while a cidofovir course
    ordered dose by dose is between doses (TherapyState.between_doses): two agents unless cidofovir
    stops.  Text only: whether the draft replaces cidofovir is the clinician's, and other cards may change
    the draft (a switch, a renal dose), which a removal would undo."""
    drug = target.drug
    words = (
        "Letermovir is prophylaxis only: it adds nothing to a treatment course (clinical brief)."
        if drug == "letermovir" else
        "One anti-CMV course at a time, apart from the combinations the brief names (ganciclovir plus foscarnet "
        "for CNS disease) and specialist-directed resistant disease (clinical brief)."
    )
    return Finding(
        topic="duplicate-therapy",
        indicator="warning",
        summary=f"{drug.capitalize()} ordered during a cidofovir course (last dose {last_dose.dose_day.isoformat()}): "
                "two anti-CMV agents",
        detail="\n\n".join([
            f"**Order:** {describe_order(target.order)}.",
            f"**Cidofovir course between doses:** {next_dose_words(last_dose, gap_days)}.",
            words,
            f"If {drug} replaces cidofovir, order no further cidofovir dose; if not, remove this {drug} order.",
        ]),
        sources=cite("clinical-brief", f"{drug}-label"),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=target.order.id,
        key=f"duplicate-therapy|{target.order.id}|cidofovir",
    )


def switch_phase(phase: Phase, facts: ClinicalFacts, policy: Policy) -> Phase:
    """The phase a switch away from a course starts the new drug in: the course's, but induction when viraemia is at
    the treatment level (a maintenance dose of the new drug would not treat it)."""
    return "induction" if phase == "maintenance" and treatment_level_viraemia(facts, policy) else phase


def regimen_line(facts: ClinicalFacts, title: str, words: str) -> str:
    """'**Regimen (clinical brief):** <words>': the sources' regimens are adult doses.  For a patient the adult bands
    do not apply to (a child) none of them is printed: the reference says to say so rather than apply adult tables."""
    child = renal_dosing.out_of_scope(facts)
    return f"**{title}:** the adult regimen is not given: {child}." if child else f"**{title}:** {words}"


def dose_for(drug: str, phase: Phase, facts: ClinicalFacts, policy: Policy) -> RenalDose | CannotDose:
    regimen = (FOSCARNET_INDUCTION if phase == "induction" else "90/day") if drug == "foscarnet" else None
    return renal_dosing.renal_dose(drug, phase, facts, policy, regimen)


def usable(dose: RenalDose | CannotDose | None) -> bool:
    return isinstance(dose, RenalDose) and dose.dose_mg is not None and not dose.not_recommended


def dose_words(dose: RenalDose) -> str:
    """'175 mg every 12 h (2.5 mg/kg)', '900 mg (2 x 450 mg tablets) twice daily'."""
    text = f"{fmt(dose.dose_mg)} mg"
    if dose.unit_count and dose.unit_strength_mg:
        units = "tablet" if dose.unit_count == 1 else "tablets"
        text += f" ({fmt(dose.unit_count)} x {fmt(dose.unit_strength_mg)} mg {units})"
    text += f" {dose.schedule}"
    if dose.mg_per_kg is not None:
        text += f" ({fmt(dose.mg_per_kg, 3)} mg/kg)"
    return text


def dose_block(title: str, dose: RenalDose | CannotDose, shown: set[str] | None = None) -> str:
    """Markdown: the dose (or why there is none), its band, calculation and inputs (leaving out
    input lines already in `shown`, which it extends)."""
    drug = DRUG_WORDS.get(dose.drug, dose.drug)
    if isinstance(dose, CannotDose):
        return (
            f"**{title}: {drug}, dose cannot be computed** ({'; '.join(dose.reasons)}). "
            + no_dose_words(dose.missing)
        )
    if not usable(dose):
        return f"**{title}: {drug}, not recommended** for {dose.band}: {dose.not_recommended}."
    lines = [f"**{title}: {drug} {dose_words(dose)}** ({dose.phase} dose for {dose.band})."]
    if dose.calculation:
        lines.append(f"- Calculation: {dose.calculation}")
    inputs = [line for line in dose.inputs if shown is None or line not in shown]
    if inputs:
        lines.append("- Inputs:" if len(inputs) == len(dose.inputs) else "- Further inputs:")
        lines += [f"  - {line}" for line in inputs]
    if shown is not None:
        shown.update(dose.inputs)
    return "\n".join(lines)


def regimen_proposal(
    dose: RenalDose,
    *,
    verb: str = "Order",
    recommended: bool = False,
    replaces: str | None = None,
    duration_days: float | None = None,
    discontinues: tuple[str, ...] = (),
    stop_reason: str | None = None,
) -> DoseProposal:
    label = f"{verb} {DRUG_WORDS.get(dose.drug, dose.drug)} {dose_words(dose)}"
    return dose_proposal(
        dose, label, replaces=replaces, recommended=recommended, duration_days=duration_days, discontinues=discontinues,
        stop_reason=stop_reason,
    )


def infectious_diseases_consult(reason: str) -> ConsultProposal:
    return ConsultProposal("Request infectious diseases consultation", "infectious-disease", reason, recommended=True)


def missing_inputs(dose: RenalDose | CannotDose) -> tuple[Proposal, ...]:
    """Lab orders for what a dose could not be computed without (a creatinine); the rest (weight,
    height) is recorded, not ordered, and the card says so."""
    if not isinstance(dose, CannotDose) or "creatinine" not in dose.missing:
        return ()
    return (LabOrderProposal("Order serum creatinine (needed for the dose)", "creatinine", recommended=True),)


# ---------------------------------------------------------------------------------------------
# Documented intolerance and resistance: what they rule out, and what a documented mutation may affect

MUTATION_LEAD = "**Documented mutation:**"
CIDOFOVIR_THIRD_LINE = "Cidofovir is third line (substantial nephrotoxicity)."


def _resistance_name(drug: str) -> str:
    """The drug a record names resistant: valganciclovir's resistance is ganciclovir's (its prodrug)."""
    return "ganciclovir" if drug in GANCICLOVIR_FAMILY else drug


def documented_resistant(conditions: ConditionFacts, drug: str) -> bool:
    """Named resistant in words, or a mutation in a gene that confers resistance to it."""
    return conditions.resistant_to(_resistance_name(drug))


def mutation_may_affect(conditions: ConditionFacts, drug: str) -> bool:
    """A documented gene's mutations can confer resistance to `drug` (resistance definitions)."""
    return any(_resistance_name(drug) in RESISTANCE_GENES.get(gene, ()) for gene in conditions.resistance_genes)


def refractory_documented(conditions: ConditionFacts) -> bool:
    """Resistance to a treatment drug is documented, so the CMV is not responding: maribavir's label
    indication after transplant (refractory, with or without resistance).  Intolerance alone is not."""
    return any(documented_resistant(conditions, drug) for drug in TREATMENT_AGENTS)


def _documented(words: str, conditions: ConditionFacts, labels: set[str]) -> str:
    shown = documented_by(conditions, labels)
    return words + (f": {shown}" if shown else "")


def resistance_words(conditions: ConditionFacts, drug: str) -> str:
    """'documented foscarnet resistance: foscarnet-resistant CMV (Condition/4: text ...)'."""
    name = _resistance_name(drug)
    labels = {resistant_label(name)} | {mutation_label(gene) for gene in conditions.conferring_genes(name)}
    return _documented(f"documented {name} resistance", conditions, labels)


def documented_barriers(conditions: ConditionFacts, drug: str) -> tuple[str, ...]:
    """Why the record says not to give `drug`: documented ganciclovir/valganciclovir intolerance, and
    documented resistance, each with its evidence."""
    found = []
    if drug in GANCICLOVIR_FAMILY and conditions.ganciclovir_intolerance:
        found.append(_documented("documented ganciclovir intolerance", conditions, {INTOLERANCE.label}))
    if documented_resistant(conditions, drug):
        found.append(resistance_words(conditions, drug))
    return tuple(found)


def not_proposed(conditions: ConditionFacts, drug: str) -> str:
    return f"**{drug.capitalize()}: not proposed:** {resistance_words(conditions, drug)}."


def mutation_caveat(conditions: ConditionFacts, drugs: Iterable[str]) -> str | None:
    """For the drugs a card names and does not rule out: which documented mutations can also confer
    resistance to them (resistance definitions), or None."""
    named = [d for d in drugs if not documented_resistant(conditions, d)]
    confers = []
    for gene, affected in RESISTANCE_GENES.items():
        hit = [d for d in named if d in affected] if gene in conditions.resistance_genes else []
        if hit:
            also = f" (and {' and '.join(hit[1:])})" if len(hit) > 1 else ""
            confers.append(f"{gene} mutations can also confer {hit[0]}{also} resistance")
    if not confers:
        return None
    return (
        f"{MUTATION_LEAD} " + "; ".join(confers) + " (resistance definitions): check the genotype report for "
        "this mutation before choosing; consult infectious diseases."
    )


def mutation_sources(blocks: Iterable[str]) -> list[str]:
    """The resistance definitions, cited when a card says what a documented mutation may affect."""
    return ["resistance-definitions"] if any(MUTATION_LEAD in block for block in blocks) else []


@frozen
class SwitchOptions:
    """What a card offers instead of the drug ordered: its text blocks and proposals, and the
    foscarnet dose and maribavir proposal they came from (None when not offered)."""

    blocks: tuple[str, ...]
    proposals: tuple[Proposal, ...]
    foscarnet: RenalDose | CannotDose | None
    maribavir: DoseProposal | None
    already: tuple[str, ...] = ()  # alternatives not offered because they are already ordered
    labels: tuple[str, ...] = ()  # the labels of the drugs its blocks speak of (for the card's sources)


def family_stops(drug: str, also_stopping: tuple[TherapyOrder, ...], what: str) -> list[str]:
    """The line naming the other orders on record of `drug` (or of the ganciclovir family) that `what`
    (a card's switches, or its removal) discontinues as well."""
    if not also_stopping:
        return []
    shown = "; ".join(f"{o.describe()} ({o.order.id})" for o in also_stopping)
    kin = "the same drug" if all(o.drug == drug for o in also_stopping) else "the same drug family"
    return [also_on_record((o.order for o in also_stopping), kin, what, shown)]


def stop_with_kin(
    target: TherapyOrder, reason: str, also_stopping: tuple[TherapyOrder, ...], switched_on: Finding | None = None,
) -> tuple[StopOrderProposal, list[str]]:
    """The removal of a draft (or discontinuation of an order on record) that discontinues
    `also_stopping` (the other orders on record of its drug) with it, except those the card
    `switched_on` already stops, and the line that says so."""
    stopping = tuple(o for o in also_stopping if switched_on is None or o.order.id not in acted_on(switched_on))
    verb, what = ("Remove", "the removal offered here") if target.order.is_draft else ("Discontinue", "the stop offered here")
    also = carried_stops((o.order.id for o in stopping), reason)
    return (StopOrderProposal(f"{verb} the {target.drug} order", target.order.id, reason, also=also),
            family_stops(target.drug, stopping, what))


def switch_options(
    facts: ClinicalFacts,
    policy: Policy,
    ordered: str,
    *,
    phase: Phase,
    title: str,
    replaces: str | None,
    recommend: bool,
    maribavir: bool,
    discontinues: tuple[str, ...] = (),
) -> SwitchOptions:
    """Foscarnet (renal dosed, unless it is the drug ordered or documented resistant), the other
    second-line notes, and maribavir when `maribavir` (its label indication holds).  A foscarnet dose
    that cannot be computed asks for the creatinine, except on a draft (the missing-data card asks).
    Foscarnet is recommended when `recommend` and no documented mutation may affect it.  Each switch
    updates the draft `replaces`, or discontinues the order on record `discontinues` as it orders.  When
    an alternative is already ordered (on record, or another draft), nothing is ordered: the card says
    so, and the order only stops."""
    conditions = facts.conditions
    already = alternatives_ordered(facts, but=replaces, ordered=ordered)
    if already:
        return SwitchOptions(tuple(already_ordered_lines(already)), (), None, None, tuple(already),
                             tuple(f"{drug}-label" for drug in already))
    blocks: list[str] = []
    proposals: list[Proposal] = []
    foscarnet = None
    if ordered != "foscarnet" and not documented_resistant(conditions, "foscarnet"):
        foscarnet = dose_for("foscarnet", phase, facts, policy)
        blocks.append(dose_block(title, foscarnet))
        if usable(foscarnet):
            if electrolytes := foscarnet_electrolytes_block(facts, policy):
                blocks.append(electrolytes)
            recommended = recommend and not mutation_may_affect(conditions, "foscarnet")
            proposals.append(regimen_proposal(
                foscarnet, verb="Switch to", recommended=recommended, replaces=replaces, discontinues=discontinues
            ))
        elif replaces is None:
            proposals += missing_inputs(foscarnet)
    blocks += second_line_notes(conditions, foscarnet=ordered != "foscarnet")
    mari = None
    labels = ["foscarnet-label", "cidofovir-label"]  # foscarnet's notes (or why not), cidofovir third line
    if maribavir and ordered != "maribavir" and conditions.populations & POST_TRANSPLANT:
        verb = "Or switch to" if foscarnet is not None and usable(foscarnet) else "Switch to"
        mari, line = maribavir_proposal(facts, policy, replaces=replaces, verb=verb, discontinues=discontinues)
        blocks.append(line)
        labels.append("maribavir-label")
        if mari is not None:
            proposals.append(mari)
    return SwitchOptions(tuple(blocks), tuple(proposals), foscarnet, mari, labels=tuple(labels))


def maribavir_proposal(
    facts: ClinicalFacts,
    policy: Policy,
    *,
    replaces: str | None = None,
    verb: str = "Or switch to",
    discontinues: tuple[str, ...] = (),
) -> tuple[DoseProposal | None, str]:
    """Maribavir (fixed label dose, adjusted for the inducers it names), for refractory CMV after
    transplant: the proposal (none when documented resistant), and the text the card shows."""
    if documented_resistant(facts.conditions, "maribavir"):
        return None, not_proposed(facts.conditions, "maribavir")
    dose = renal_dosing.renal_dose("maribavir", "induction", facts, policy)
    if not usable(dose):
        why = "; ".join(dose.reasons) if isinstance(dose, CannotDose) else dose.not_recommended
        return None, f"**Maribavir** (refractory post-transplant CMV): not proposed: {why}."
    line = (
        f"**Maribavir {dose_words(dose)}** by mouth ({dose.band.removesuffix(' (label)')}; label) for refractory "
        "post-transplant CMV, with "
        "or without resistance; not together with ganciclovir or valganciclovir (antagonism)."
    )
    raised = sorted({display_name(g) for o in co_medications(facts) for g in groups_of(o, CNI_MARIBAVIR)})
    if raised:
        line += f" It raises {' and '.join(raised)} levels (label): monitor them when it starts."
    caveat = mutation_caveat(facts.conditions, ("maribavir",))
    if caveat:
        line += f"\n\n{caveat}"
    proposal = DoseProposal(
        label=f"{verb} oral maribavir {dose_words(dose)}",
        drug="maribavir",
        dose_mg=dose.dose_mg,
        interval_hours=dose.interval_hours,
        route=dose.route,
        schedule=dose.schedule,
        replaces=replaces,
        also=tuple(discontinuation(order_id, "maribavir") for order_id in discontinues),
    )
    return proposal, line


# ---------------------------------------------------------------------------------------------
# Blood counts and the reasons not to give ganciclovir


@frozen
class BloodCounts:
    below: tuple[str, ...]  # "ANC 420 /uL (2026-11-24), below 500 /uL"
    unknown: tuple[str, ...]  # "no platelets result on record"
    shown: tuple[str, ...]  # every current value, for the card


def blood_counts(facts: ClinicalFacts, policy: Policy) -> BloodCounts:
    """Current counts against the label's limits for ganciclovir/valganciclovir (shared with the
    order-safety checks: toxicity.BLOOD_COUNT_LIMITS)."""
    low, unknown, shown = [], [], []
    for limit in BLOOD_COUNT_LIMITS:
        m = current(facts, limit.analyte, policy.blood_count_max_age_days)
        if m is None:
            unknown.append(why_not_current(facts, limit.analyte, policy.blood_count_max_age_days))
            continue
        shown.append(count_words(m))
        if below(m, limit.limit):
            low.append(f"{count_words(m)} ({limit.words})")
    return BloodCounts(tuple(low), tuple(unknown), tuple(shown))


def ganciclovir_barriers(facts: ClinicalFacts, counts: BloodCounts) -> tuple[str, ...]:
    """Why ganciclovir/valganciclovir should not be the drug: cytopenia, documented intolerance or
    resistance (each with its evidence)."""
    cytopenia = tuple(f"cytopenia: {c} (label: do not start)" for c in counts.below)
    return cytopenia + documented_barriers(facts.conditions, "ganciclovir")


def second_line_notes(conditions: ConditionFacts, *, foscarnet: bool = True) -> list[str]:
    """The alternatives to ganciclovir in words: foscarnet's notes, or why it is not proposed (nothing
    when `foscarnet` is False: the order is foscarnet); cidofovir third line; what documented mutations
    may affect."""
    lead = ""
    if foscarnet and documented_resistant(conditions, "foscarnet"):
        lead = not_proposed(conditions, "foscarnet") + " "
    elif foscarnet:
        # The label's litre per dose is no advice for a dialysed patient (foscarnet is not recommended then).
        hydration = "" if conditions.renal_replacement == "dialysis" else f" {FOSCARNET_HYDRATION}"
        lead = (
            "Foscarnet for 2-3 weeks: nephrotoxicity in about 25% of patients; electrolytes (potassium, "
            "magnesium, calcium including ionised, phosphate) and creatinine clearance 2-3 times weekly in "
            f"induction.{hydration} "
        )
    if documented_resistant(conditions, "cidofovir"):
        third = f"Cidofovir (third line): {resistance_words(conditions, 'cidofovir')}."
    else:
        third = CIDOFOVIR_THIRD_LINE
    caveat = mutation_caveat(conditions, ("foscarnet", "cidofovir") if foscarnet else ("cidofovir",))
    return [lead + third] + ([caveat] if caveat else [])


# ---------------------------------------------------------------------------------------------
# A course to start: which drug, at which dose


@frozen
class StartPlan:
    dose: RenalDose | CannotDose  # what to start now
    then: RenalDose | CannotDose | None  # the oral step-down after improvement (IV start)
    other: RenalDose | CannotDose | None  # the other first-line route, shown in text
    barriers: tuple[str, ...]  # why ganciclovir/valganciclovir is not the drug (-> foscarnet)
    counts: BloodCounts
    notes: tuple[str, ...] = ()  # foscarnet, cidofovir (with barriers) and documented mutations in words
    # What documented resistance says about `dose`'s drug: "possible" (a documented mutation may affect
    # it: proposed, not recommended), "documented" (named resistant: nothing proposed).
    resistance: Literal["none", "possible", "documented"] = "none"
    # The orders on record could not be retrieved: whether treatment already runs is not known.
    treatment_unknown: bool = False

    @property
    def recommended(self) -> bool:
        """Whether its order is a recommended proposal: not with a mutation that may affect the drug, nor with the
        orders on record not retrieved (it may be a second course)."""
        return self.resistance == "none" and not self.treatment_unknown


# What a start card says when the orders on record could not be had: it may be a second course.
TREATMENT_UNKNOWN = ("**Orders on record could not be retrieved:** whether anti-CMV treatment is already running is "
                     "not known here: check the medication list before ordering (not a second course).")


def no_treatment_words(plan: StartPlan, short: bool = False) -> str:
    """'no anti-CMV treatment', or, the orders on record not had, that it is not known."""
    if plan.treatment_unknown:
        return "treatment on record unknown, if none"
    return "no treatment" if short else "no anti-CMV treatment"


def start_plan(facts: ClinicalFacts, policy: Policy, first: Literal["iv", "oral"]) -> StartPlan:
    """IV ganciclovir then oral valganciclovir (disease), or oral valganciclovir (pre-emptive,
    retinitis); foscarnet when ganciclovir cannot be used (nothing when foscarnet is documented
    resistant); IV ganciclovir when tablets are not recommended for the kidneys."""
    counts = blood_counts(facts, policy)
    barriers = ganciclovir_barriers(facts, counts)
    unknown = not retrieved(facts, "medications")
    if barriers:
        c = facts.conditions
        resistance = (
            "documented" if documented_resistant(c, "foscarnet")
            else "possible" if mutation_may_affect(c, "foscarnet") else "none"
        )
        foscarnet = dose_for("foscarnet", "induction", facts, policy)
        notes = second_line_notes(c)
        if usable(foscarnet) and resistance != "documented" and (electrolytes := foscarnet_electrolytes_block(facts, policy)):
            notes.append(electrolytes)  # every card that starts foscarnet shows what to correct first
        return StartPlan(foscarnet, None, None, barriers, counts, tuple(notes), resistance, unknown)
    iv = dose_for("ganciclovir", "induction", facts, policy)
    oral = dose_for("valganciclovir", "induction", facts, policy)
    # A mutation whose record names another drug ("foscarnet-resistant UL54 ...") may still affect ganciclovir.
    caveat = mutation_caveat(facts.conditions, ("ganciclovir",))
    notes, resistance = ((caveat,), "possible") if caveat else ((), "none")
    if first == "iv":
        return StartPlan(iv, oral, None, (), counts, notes, resistance, unknown)
    if isinstance(oral, RenalDose) and oral.not_recommended:
        return StartPlan(iv, None, oral, (), counts, notes, resistance, unknown)
    return StartPlan(oral, None, iv, (), counts, notes, resistance, unknown)


def plan_labels(plan: StartPlan) -> tuple[str, ...]:
    """The sources of every dose the plan shows (the start, the step-down, the other route): each drug's
    label, and the guideline with valganciclovir's dialysis alternative where the plan shows it."""
    shown = tuple(d for d in (plan.dose, plan.then, plan.other) if d is not None)
    alternative = any(dialysis_alternative(d) for d in shown)
    return tuple(dict.fromkeys((*(f"{d.drug}-label" for d in shown),
                                *((renal_dosing.DIALYSIS_ALTERNATIVE_SOURCE,) if alternative else ()))))


def plan_blocks(plan: StartPlan, title: str) -> list[str]:
    shown: set[str] = set()
    blocks = [TREATMENT_UNKNOWN] if plan.treatment_unknown else []
    if plan.resistance == "documented":
        blocks.append(f"**{title}:** no regimen is proposed: choose it with infectious diseases.")
    else:
        blocks.append(dose_block(title, plan.dose, shown))
    if plan.barriers:
        blocks.append("**Why not ganciclovir/valganciclovir:** " + "; ".join(plan.barriers) + ".")
    blocks += plan.notes
    # Valganciclovir tablets the label does not recommend (dialysis, CrCl < 10): the guideline's oral
    # solution on the same line, as on the renal card.
    if plan.then is not None:
        blocks.append(" ".join((dose_block("Step-down after clinical improvement", plan.then, shown),
                                *dialysis_alternative(plan.then))))
    if plan.other is not None:
        blocks.append(" ".join((dose_block("Alternative route", plan.other, shown), *dialysis_alternative(plan.other))))
    blocks.append(_counts_line(plan.counts))
    return blocks


def _counts_line(counts: BloodCounts) -> str:
    parts = list(counts.shown) + [f"{u} (cannot check)" for u in counts.unknown]
    limits = ", ".join(limit.words for limit in BLOOD_COUNT_LIMITS)
    return f"**Blood counts** (label: do not start at {limits}): " + "; ".join(parts) + "."


def plan_proposals(
    plan: StartPlan, therapy: TherapyState, *, duration_days: float | None = None
) -> tuple[Proposal, ...]:
    """The plan's order (or what its dose needs); it discontinues the prophylaxis on record as it orders."""
    if plan.resistance == "documented":
        return ()
    if offers_order(plan):
        stops = tuple(t.order.id for t in prophylaxis_on_record(therapy))
        return (regimen_proposal(plan.dose, recommended=plan.recommended, duration_days=duration_days, discontinues=stops),)
    return missing_inputs(plan.dose)


def prophylaxis_on_record(therapy: TherapyState, but: str | None = None) -> list[TherapyOrder]:
    """Prophylaxis orders on record (not drafts) that a treatment started now replaces; `but` one."""
    return [t for t in therapy.prophylaxis if not t.order.is_draft and t.order.id != but]


def offers_order(plan: StartPlan) -> bool:
    """Whether the plan proposes an order (a usable dose of a drug not documented resistant)."""
    return plan.resistance != "documented" and usable(plan.dose)


def plan_summary(plan: StartPlan) -> str:
    """'IV ganciclovir 350 mg every 12 h' or 'IV ganciclovir: dose not computable'."""
    drug = DRUG_WORDS[plan.dose.drug]
    if plan.resistance == "documented":
        return f"a regimen chosen with ID ({plan.dose.drug} resistant, not ganciclovir)"  # the summary's < 140
    if usable(plan.dose):
        per_kg = f" ({fmt(plan.dose.mg_per_kg, 3)} mg/kg)" if plan.dose.mg_per_kg is not None else ""
        return f"{drug} {fmt(plan.dose.dose_mg)} mg {plan.dose.schedule}{per_kg}"
    return f"{drug} (dose not computable)" if isinstance(plan.dose, CannotDose) else f"{drug} (not recommended)"


# What each prophylaxis order is, for the prophylaxis-not-treatment card.
_PROPHYLAXIS_WORDS = {
    "letermovir": "Letermovir is prophylaxis only and is not a treatment for established CMV infection or disease (label).",
    "valganciclovir": "Valganciclovir at the label's prevention (maintenance) dose, with no treatment course on record "
                      "(active, or ended in the last 30 days): not a treatment dose.",
    "ganciclovir": "Ganciclovir at the label's maintenance dose, with no treatment course on record (active, or ended "
                   "in the last 30 days): not a treatment dose.",
}


def needs_treatment(facts: ClinicalFacts, policy: Policy) -> bool:
    """CMV disease, or viraemia at the treatment level: prophylaxis is not what the record calls for."""
    return bool(facts.conditions.cmv_disease or treatment_level_viraemia(facts, policy))


def prophylaxis_not_treatment(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, target: TherapyOrder,
    treatment_elsewhere: str | None = None,
) -> Finding | None:
    """prophylaxis-not-treatment: a prophylaxis draft (letermovir, or a ganciclovir-family dose at the
    prevention level) while CMV disease or treatment-level viraemia is present.  Proposes the regimen
    the regimen cards would start (start_plan: IV ganciclovir for disease, oral valganciclovir for
    viraemia and for HIV retinitis, foscarnet when the blood counts or the record rule ganciclovir out)
    in place of the draft, unless the call already starts treatment (`treatment_elsewhere`: a treatment
    draft, or another card): one treatment course, not two.  Nothing while a treatment is active: the duplicate-therapy card
    says the prophylaxis adds nothing to it."""
    c = facts.conditions
    sites = sorted(c.cmv_disease_sites)
    viraemia = treatment_level_viraemia(facts, policy)
    if therapy.in_course or not (sites or viraemia):
        return None
    order, drug = target.order, target.drug
    plan = start_plan(facts, policy, "iv" if sites and not facts.conditions.hiv_retinitis_only else "oral")
    reason = disease_indication(facts).words if sites else "treatment-level CMV viraemia"
    blocks = [f"**Ordered:** {describe_order(order)}."]
    if sites:
        evidence = [e for e in c.evidence if e.label.lower().startswith("cmv")]
        blocks.append("**CMV disease on record:** " + ("; ".join(f"{e.label} ({e.matched_by})" for e in evidence) or ", ".join(sites)))
    if viraemia:
        blocks.append(f"**Viraemia:** {viraemia}")
    # Valganciclovir where its label recommends no tablets at all (dialysis, CrCl < 10): its dose is no
    # prevention dose there, so the card says what the label says instead.
    tablets = dose_for("valganciclovir", "maintenance", facts, policy) if drug == "valganciclovir" else None
    # Unless it is the guideline's oral solution on dialysis (Kotton 2025), which is no tablet.
    a = assess_dose(order, drug, facts, policy) if drug == "valganciclovir" and oral_solution(order) else None
    solution = a.dose if a is not None and a.matched and a.dose in dialysis_solution_doses(facts) else None
    no_tablets = isinstance(tablets, RenalDose) and bool(tablets.not_recommended) and solution is None
    # An oral solution at another dose is not tablets: off the guideline's dose (on dialysis), said as such.
    solution_off_guideline = no_tablets and oral_solution(order)
    off_guideline = (f"; this oral solution is not at the guideline's dose either ({VALGANCICLOVIR_DIALYSIS_GUIDELINE[:-1]})"
                     if solution_off_guideline and c.renal_replacement == "dialysis" else
                     "; nor this oral solution, which the guideline doses on hemodialysis only (Kotton 2025)"
                     if solution_off_guideline else "")
    where = "on dialysis" if c.renal_replacement == "dialysis" else "at CrCl < 10 mL/min"
    # A maintenance-interval dose above its band for these kidneys is no label dose at all: said, with how far
    # above, so that an order kept as prophylaxis is not kept at it.
    over = None if no_tablets or drug not in GANCICLOVIR_FAMILY else above_its_band(order, drug, facts, policy)
    if no_tablets:
        if plan.dose.drug == "ganciclovir":
            then = f"treatment needs IV ganciclovir at the {'dialysis dose' if where == 'on dialysis' else 'dose for these kidneys'}"
        elif offers_order(plan):
            then = "the treatment for this patient is below"
        else:  # foscarnet documented resistant as well: no regimen is proposed
            then = "the treatment is to be chosen with infectious diseases"
        what_it_is = (f"Valganciclovir tablets are not recommended {where} at any dose (valganciclovir label: "
                      f"{tablets.not_recommended}){off_guideline}: this order is not a treatment, and {then}. Consult "
                      "infectious diseases (clinical brief).")
    else:
        ordered_as = (f"{drug.capitalize()} at a dose above the label's prevention (maintenance) dose for these "
                       f"kidneys ({over}), with no treatment course on record (active, or ended in the last 30 days): "
                       "not a treatment dose." if over
                      else f"Valganciclovir oral solution at the guideline's maintenance dose on hemodialysis "
                           f"({fmt(solution.dose_mg)} mg {solution.schedule}; Kotton 2025), with no treatment course on "
                           "record (active, or ended in the last 30 days): not a treatment dose." if solution
                      else f"{drug.capitalize()} at a dose that is not the label's prevention (maintenance) dose for "
                           "these kidneys, with no treatment course on record (active, or ended in the last 30 days): not "
                           "a treatment dose." if _off_its_band(order, drug, facts, policy)
                      else _PROPHYLAXIS_WORDS[drug])
        what_it_is = (f"{ordered_as} Once CMV needs treatment, the treatment regimen applies whatever "
                      "prophylaxis was used; consult infectious diseases (clinical brief).")
    blocks += [
        what_it_is,
        *plan_blocks(plan, "Treatment for this patient"),
    ]
    # With the treatment elsewhere, removing the draft is the one thing to do: recommended (and no other
    # card removes it: order safety leaves the removal to this card, whose reason fits).
    proposals: list[Proposal] = [StopOrderProposal(f"Remove the {drug} order", order.id, "prophylaxis; treatment needed",
                                                   recommended=treatment_elsewhere is not None)]
    if treatment_elsewhere is not None:
        blocks.append(f"**Treatment:** {treatment_elsewhere} (one treatment course, not two).")
    elif offers_order(plan):
        # The draft becomes the treatment; prophylaxis on record stops with it.
        stopping = prophylaxis_on_record(therapy, but=order.id)
        if stopping:
            blocks.append("**Prophylaxis on record:** " + "; ".join(f"{t.describe()} ({t.order.id})" for t in stopping)
                          + ": the change offered here also discontinues it.")
        # The treatment this draft should be: recommended, as a start card's is.
        proposals.insert(0, regimen_proposal(as_ordered(plan.dose, order), verb="Change to", replaces=order.id,
                                             discontinues=tuple(t.order.id for t in stopping),
                                             recommended=plan.recommended))
    what = ("Letermovir is prophylaxis" if drug == "letermovir"
            else f"{drug.capitalize()} above its renal band" if over else f"{drug.capitalize()} at a prophylaxis dose")
    summary = (clip(f"{valganciclovir_not_recommended(order, where == 'on dialysis')} {where} and not treatment: "
                    f"{reason} present") if no_tablets
               else clip(f"{what}, not treatment: {reason} present"))
    return Finding(
        topic="prophylaxis-not-treatment",
        indicator="warning",
        summary=summary,
        detail="\n\n".join(blocks),
        sources=cite(*dict.fromkeys((f"{drug}-label", "clinical-brief", *plan_labels(plan),
                                     *(("kotton-2025",) if solution or off_guideline else ())))),
        proposals=tuple(proposals),
        override_reasons=("prophylaxis-intended", "specialist-directed", "already-addressed"),
        order_id=order.id,
        key=f"prophylaxis-not-treatment|{order.id}",
    )


def _off_its_band(order: MedicationOrder, drug: str, facts: ClinicalFacts, policy: Policy) -> bool:
    """A ganciclovir-family order read against its band, matching none of it (600 mg a week of valganciclovir where
    the band's prevention dose is 900 mg daily, or 1800 mg every 2 days): not the label's prevention dose."""
    if drug not in GANCICLOVIR_FAMILY:
        return False
    a = assess_dose(order, drug, facts, policy)
    return a.dose is not None and not a.matched and a.cannot is None and not a.unreadable and not a.readings


def prophylaxis_note(therapy: TherapyState, what: str, plan: StartPlan) -> list[str]:
    """Letermovir or a prophylactic dose on record is not treatment: said where treatment is proposed."""
    if not therapy.prophylaxis:
        return []
    shown = "; ".join(f"{t.describe()} ({t.order.id})" for t in therapy.prophylaxis)
    stops = ": the treatment order offered here discontinues it as it orders." if offers_order(plan) else "."
    return [
        f"**Prophylaxis on record:** {shown}. Prophylaxis is not treatment: once CMV {what} develops the "
        "treatment regimen applies, whatever prophylaxis was used (letermovir does not treat established "
        "infection; a prophylactic valganciclovir dose is not a treatment dose). Stop the prophylaxis order "
        f"when treatment starts{stops}"
    ]


def monitoring_line(plan: StartPlan) -> str:
    """The brief's monitoring during treatment, in words (electrolytes too when the plan is foscarnet)."""
    foscarnet = plan.dose.drug == "foscarnet" and plan.resistance != "documented"
    return ("**Monitoring:** CMV PCR weekly until undetectable; CBC at least weekly; renal function"
            + (" and electrolytes 2-3 times weekly (foscarnet)." if foscarnet else "."))


# The brief's monitoring during treatment, as orders.
MONITORING_PROPOSALS: tuple[Proposal, ...] = (
    LabOrderProposal("Order CMV PCR weekly", "cmv-pcr", recurrence="weekly"),
    LabOrderProposal("Order CBC weekly", "cbc", recurrence="weekly"),
)


# ---------------------------------------------------------------------------------------------
# Rules


@frozen
class Indication:
    """Why CMV treatment is needed: end-organ disease, or viraemia meeting the pre-emptive trigger."""

    disease: bool
    words: str  # "CMV pneumonitis", "CMV viraemia needing pre-emptive therapy"
    evidence: tuple[str, ...]  # what established it, for the card
    note: str = ""  # how it was decided (the pre-emptive trigger's policy)


def documented_by(conditions: ConditionFacts, labels: Iterable[str]) -> str:
    """The evidence for these labels, one condition each, '; '-joined ('' when none)."""
    wanted = set(labels)
    return "; ".join(evidence_lines(e for e in conditions.evidence if e.label in wanted))


def evidence_lines(evidence: Iterable[ConditionEvidence]) -> tuple[str, ...]:
    """One line per condition: 'CMV retinitis (Condition/2: SNOMED CT 22455005, text 'CMV retinitis';
    onset 2026-11-23)' - a condition matched several ways is shown once."""
    grouped: dict[tuple[str, str], list[ConditionEvidence]] = {}
    for e in evidence:
        grouped.setdefault((e.label, e.source_id), []).append(e)
    lines = []
    for (label, source), matches in grouped.items():
        how = ", ".join(dict.fromkeys(e.matched_by for e in matches))
        onset = next((e.onset for e in matches if e.onset), None)
        lines.append(f"{label} ({source}: {how}" + (f"; onset {onset.isoformat()})" if onset else ")"))
    return tuple(lines)


def disease_indication(facts: ClinicalFacts) -> Indication | None:
    sites = facts.conditions.cmv_disease_sites
    if not sites:
        return None
    ordered = [s for s in _SITE_ORDER if s in sites]
    evidence = evidence_lines(
        e for e in facts.conditions.evidence if "cmv" in e.label.lower() or "cytomegalovirus" in e.label.lower()
    )
    return Indication(True, ", ".join(SITE_WORDS[s] for s in ordered), evidence)


def _last_course(therapy: TherapyState, today: date) -> list[str]:
    """The treatment course that ended last among the orders read (ended within RECENT_ORDER_DAYS), in words:
    a regimen started again says what came before it.  An order stopped before its planned end ended by today."""
    ended = [t for t in therapy.ended if t.kind == "treatment" and (t.planned_end or t.begins)]
    if not ended:
        return []
    last = max(ended, key=lambda t: t.planned_end or t.begins)
    end = min(last.planned_end, today) if last.planned_end else None
    ran = f", {(end - last.start).days + 1} days" if end and last.start else ""
    when = f"ended {end.isoformat()}{ran}" if end else "ended (end date not on record)"
    return [f"**Last treatment course:** {last.describe()} ({last.order.id}), {last.order.status or 'status unknown'}, {when}."]


def treatment_regimen(
    facts: ClinicalFacts,
    policy: Policy,
    therapy: TherapyState,
    indication: Indication,
) -> Finding | None:
    """cmv-treatment-regimen: the first-line regimen when nothing treats the CMV yet."""
    if therapy.in_course:
        return None
    plan = start_plan(facts, policy, "iv" if indication.disease else "oral")
    lead = "CMV disease" if indication.disease else "CMV viraemia"
    if isinstance(plan.dose, RenalDose) and plan.dose.not_recommended and plan.resistance != "documented":
        # Nothing the label allows can be started (foscarnet on dialysis, say): no "start X (not recommended)".
        summary = (f"{_short(indication.words)}, {no_treatment_words(plan)}: {DRUG_WORDS[plan.dose.drug]} not recommended "
                   "(kidneys): consult ID")
    else:
        summary = f"{_short(indication.words)}, {no_treatment_words(plan)}: start {plan_summary(plan)}"
        if plan.barriers and plan.resistance != "documented":
            summary += " (not ganciclovir)"
        elif plan.then is not None and usable(plan.dose) and usable(plan.then):  # no tablets below CrCl 10
            summary += ", then valganciclovir"
    first_line = (
        # Ganciclovir ruled out (intolerance, resistance): the brief's alternative, not its first line.
        "ganciclovir not tolerated, or resistance: foscarnet for 2-3 weeks, watching nephrotoxicity (about 25% "
        "of patients) and electrolytes"
        if plan.dose.drug == "foscarnet"
        else "IV ganciclovir 5 mg/kg every 12 h for the first 3-5 days; after clinical improvement oral "
        "valganciclovir 900 mg every 12 h with food, completing 2-3 weeks in total and until CMV DNA is "
        "no longer detected in blood"
        if indication.disease
        else "pre-emptive therapy with the treatment drugs: oral valganciclovir 900 mg every 12 h with food "
        "(or IV ganciclovir 5 mg/kg every 12 h), at least 2 weeks and until CMV DNA is no longer detected"
    )
    blocks = [
        f"**Indication:** {indication.words}" + (": " + "; ".join(indication.evidence) if indication.evidence else "")
        + ("." if plan.treatment_unknown else ". No active anti-CMV treatment on record.")
        + (f" {indication.note}" if indication.note else ""),
        *_last_course(therapy, facts.evaluated_at.date()),
        regimen_line(facts, "Regimen (clinical brief)", f"{first_line}.") + " Consult infectious diseases early.",
        *plan_blocks(plan, "Start now"),
    ]
    maribavir = refractory_documented(facts.conditions) and bool(facts.conditions.populations & POST_TRANSPLANT)
    if maribavir:
        blocks.append(maribavir_proposal(facts, policy)[1])
    blocks += prophylaxis_note(therapy, "disease" if indication.disease else "viraemia", plan)
    # The SOT study is about valganciclovir: said (and cited) only when the plan is the ganciclovir family.
    sot_study = "sot" in facts.conditions.populations and plan.dose.drug in GANCICLOVIR_FAMILY
    if sot_study:
        organs = ", ".join(sorted(facts.conditions.transplant_organs)) or "organ not recorded"
        blocks.append(
            f"**Solid-organ transplant ({organs}):** valganciclovir works for pre-emptive therapy and for CMV "
            "disease (83.9% success in the cited SOT study); courses are often longer (median 21 days for "
            "pre-emptive therapy)."
        )
    blocks.append(monitoring_line(plan))
    proposals = (
        *plan_proposals(plan, therapy),
        infectious_diseases_consult(f"{lead}: treatment"),
        *MONITORING_PROPOSALS,
    )
    sources = ["clinical-brief", *sot_guideline(facts), "antiviral-treatment-2011"]
    sources += ["foscarnet-label"] if plan.dose.drug == "foscarnet" else ["ganciclovir-label", "valganciclovir-label"]
    sources += plan_labels(plan)  # and the guideline of valganciclovir's dialysis alternative, where shown
    sources += ["maribavir-label"] if maribavir else []
    if sot_study:
        sources.append("sot-valganciclovir-2008")
    sources += mutation_sources(blocks)
    return Finding(
        topic="cmv-treatment-regimen",
        indicator="warning",
        summary=summary,
        detail="\n\n".join(blocks),
        sources=cite(*sources),
        proposals=proposals,
        selection="any",  # the drug, the consult and the monitoring orders are independent actions
        override_reasons=("patient-specific-regimen", "already-addressed", "specialist-directed"),
        key="cmv-treatment-regimen",
    )


def maintenance_breakthrough(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, leaving: Collection[str] = ()
) -> Finding | None:
    """cmv-treatment-regimen (warning, patient-view): after transplant, CMV viraemia at the pre-emptive trigger while
    every treatment on record is a ganciclovir-family maintenance dose at its band, and the PCRs do not show it
    controlled (_controlled).  A maintenance dose does not treat it: the treatment dose for the kidneys, IV
    ganciclovir for CMV disease (the brief's first line) or when IV ganciclovir is the maintenance, else oral
    valganciclovir; ordered in one suggestion that discontinues the maintenance orders, every other family order on
    record and the prophylaxis on record, letermovir included (as a treatment started replaces it).  Not for an order another card moves off (`leaving`),
    nor an order off its band (its renal card corrects it first), nor outside transplant (the reference's viraemia
    trigger is the transplant pre-emptive one; HIV retinitis relapse is judged by the eye)."""
    why = treatment_level_viraemia(facts, policy)
    course = therapy.treating
    if (not why or not course or therapy.between_doses or not facts.conditions.populations & POST_TRANSPLANT
            or any(t.kind != "maintenance" or t.drug not in GANCICLOVIR_FAMILY or t.order.id in leaving for t in course)
            or not all(assess_dose(t.order, t.drug, facts, policy).matched for t in course)):
        return None
    if _controlled(facts.viral_load.results):
        return None
    iv = facts.conditions.cmv_disease or any(t.drug == "ganciclovir" for t in course)
    dose = dose_for("ganciclovir" if iv else "valganciclovir", "induction", facts, policy)
    # The maintenance, the rest of the family, and prophylaxis (letermovir too), as a treatment started replaces it.
    stops = tuple(dict.fromkeys(o.order.id for o in (*course, *(k for t in course for k in therapy.kin(t)),
                                                        *prophylaxis_on_record(therapy))))
    proposals = ((regimen_proposal(dose, verb="Change to", recommended=True, discontinues=stops),) if usable(dose)
                 else missing_inputs(dose))
    treatment = f"{DRUG_WORDS[dose.drug]} {dose_words(dose)}" if usable(dose) else f"{DRUG_WORDS[dose.drug]} (dose: inputs needed)"
    return Finding(
        topic="cmv-treatment-regimen",
        indicator="warning",
        summary=clip(f"CMV viraemia at treatment level on {course[0].drug} maintenance: change to {treatment}"),
        detail="\n\n".join([
            f"**Viraemia:** {why}.",
            "**Maintenance on record:** " + "; ".join(f"{t.describe()} ({t.order.id})" for t in course)
            + ": a maintenance dose, which does not treat it; the suggestion discontinues it.",
            regimen_line(facts, "Regimen (clinical brief)",
                         "the treatment dose (valganciclovir 900 mg every 12 h, or IV ganciclovir 5 mg/kg every 12 h) for "
                         "at least 2 weeks and until CMV DNA is no longer detected. Persistent viraemia despite adequate "
                         "therapy: suspect resistance."),
            dose_block("Treatment dose", dose),
        ]),
        sources=cite("clinical-brief", f"{dose.drug}-label", *sot_guideline(facts)),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        proposals=proposals,
        key="cmv-treatment-regimen|maintenance",
    )


def _controlled(results: tuple[ViralLoadResult, ...]) -> bool:
    """Whether the PCRs show viraemia being controlled: the newest not detected or below quantification, or the
    newest two quantified results falling on the scale of the newest quantified one (IU/mL and copies/mL are not
    compared with each other); with no earlier result on that scale, the newest two on the other scale decide."""
    if results and (results[0].value is None and (not results[0].detected or results[0].below_quantification)):
        return True
    by_scale: dict[str, list[float]] = {}  # newest first, the scale of the newest quantified result first
    for r in results:
        if r.value is not None and r.scale is not None:
            by_scale.setdefault(r.scale, []).append(r.value)
    pair = next((values[:2] for values in by_scale.values() if len(values) >= 2), None)
    return pair is not None and pair[0] < pair[1]


def immunosuppression_reduction(facts: ClinicalFacts, policy: Policy, therapy: TherapyState) -> Finding | None:
    """immunosuppression-reduction (warning): CMV disease while immunosuppressants are active (the
    brief gives the advice for disease, not for viraemia alone); not once treatment has brought the PCR to undetectable within the
    weekly interval (the disease stays on the problem list after it is controlled).  Untreated disease
    counts whatever the blood PCR says: tissue-invasive disease can be PCR-negative in blood."""
    if not facts.conditions.cmv_disease:
        return None
    latest = facts.viral_load.latest
    treated = therapy.treating or any(t.kind != "prophylaxis" for t in therapy.ended)  # prophylaxis is not treatment
    if treated and latest is not None and not latest.detected and latest.effective is not None and (
        facts.evaluated_at - latest.effective <= timedelta(days=policy.viral_load_monitoring_days)
    ):
        return None
    agents = [m for m in facts.active_medications if any(m.is_(c) for c in IMMUNOSUPPRESSANT_CLASSES)]
    if not agents:
        return None
    names = list(dict.fromkeys(m.ingredient or m.drug_text or "unnamed agent" for m in agents))
    why = disease_indication(facts).words
    listed = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    blocks = [
        f"**Why:** {why}.",
        "**Immunosuppressants on record:** " + "; ".join(f"{m.describe()} ({m.id})" for m in agents) + ".",
        "Withdrawing or reducing immunosuppression is associated with clinical improvement and lower "
        "mortality (clinical brief); weigh it against the risk of rejection, GVHD or a disease flare with the "
        "treating team.",
    ]
    mycophenolate = [m for m in agents if in_group(m, "mycophenolate")]
    if mycophenolate:
        blocks.append(
            "**Mycophenolate:** additive marrow toxicity with ganciclovir and valganciclovir (label)."
        )
    return Finding(
        topic="immunosuppression-reduction",
        indicator="warning",
        # The brief's words: "strongly consider withdrawing or reducing immunosuppression".
        summary=clip(f"{_short(why)} on {listed}: strongly consider reducing or withdrawing immunosuppression"),
        detail="\n\n".join(blocks),
        sources=cite("clinical-brief", *sot_guideline(facts), *(("ganciclovir-label",) if mycophenolate else ())),
        override_reasons=("already-addressed", "specialist-directed", "benefit-outweighs-risk"),
        key="immunosuppression-reduction",
    )


def alternative_therapy(
    facts: ClinicalFacts, policy: Policy, target: TherapyOrder, also_stopping: tuple[TherapyOrder, ...] = (),
    switched_on: Finding | None = None,
) -> Finding | None:
    """alternative-therapy: a treatment order the record argues against: ganciclovir or
    valganciclovir despite documented intolerance or resistance, or any drug documented resistant.
    Offers foscarnet (renal dosed) unless it is the order or documented resistant, cidofovir third line
    in the text, and after transplant maribavir when resistance is documented (refractory CMV, its
    label indication).  A drug a documented mutation may also affect is offered but not recommended.
    A prophylaxis order the record argues against gets no switch (see `_prophylaxis_alternative`).
    `also_stopping`: other courses on record each switch discontinues too (see family_stops).
    `switched_on`: the card that already starts an alternative (changing another treatment draft, or
    switching another course): this draft is then removed, or this order stopped, not switched into a
    second course."""
    conditions = facts.conditions
    barriers = documented_barriers(conditions, target.drug)
    if not barriers:
        return None
    resistant = documented_resistant(conditions, target.drug)
    documented = f"documented {_resistance_name(target.drug)} {'resistance' if resistant else 'intolerance'}"
    if target.kind == "prophylaxis":
        # CMV that needs treatment: the regimen and prophylaxis-not-treatment cards say what to give.
        if needs_treatment(facts, policy):
            return None
        return _prophylaxis_alternative(target, barriers, resistant, documented)
    phase = switch_phase("maintenance" if target.kind == "maintenance" else "induction", facts, policy)
    replaces = target.order.id if target.order.is_draft else None
    between = replaces is None and not running_on_record(target.order, facts)  # a course between doses
    no_further = no_further_dose(target)
    proposals: list[Proposal] = []
    blocks = [
        f"**Order:** {target.describe()} ({target.order.id}).",
        "**Documented:** " + "; ".join(barriers) + ".",
    ]
    common = dict(
        topic="alternative-therapy",
        indicator="warning",
        override_reasons=("patient-specific-regimen", "specialist-directed", "benefit-outweighs-risk"),
        order_id=target.order.id,
        key=f"alternative-therapy|{target.order.id}",
    )
    if switched_on is not None:
        removal, lines = stop_with_kin(target, documented, also_stopping, switched_on) if not between else (None, [no_further])
        blocks.append(f'**Alternative:** proposed on the card "{switched_on.summary}" (one replacement, not two).')
        what = "remove this draft" if replaces else "no further dose" if between else "stop it"
        return Finding(
            summary=f"{target.drug.capitalize()} despite {documented}: {what}",
            detail="\n\n".join([*blocks, *lines]),
            sources=cite("clinical-brief"),
            proposals=(removal,) if removal else (),
            **common,
        )
    switch = switch_options(
        facts, policy, target.drug, phase=phase, title=f"Alternative ({phase})", replaces=replaces, recommend=True,
        maribavir=refractory_documented(conditions),
        discontinues=(() if replaces or between else (target.order.id,)) + tuple(o.order.id for o in also_stopping),
    )
    blocks += switch.blocks
    proposals += switch.proposals
    foscarnet, mari = switch.foscarnet, switch.maribavir
    if any(isinstance(p, DoseProposal) for p in switch.proposals):
        blocks += family_stops(target.drug, also_stopping, "each switch offered here")
    else:  # nothing to switch to here
        if switch.already and not between:  # the alternative is already ordered: this order only stops
            removal, lines = stop_with_kin(target, f"{' and '.join(switch.already)} already ordered", also_stopping)
            proposals.append(removal)
            blocks += lines
        elif not switch.already:
            proposals.append(infectious_diseases_consult(f"{target.drug} despite {documented}: choose the alternative"))
    if between:
        blocks.append(no_further)
    elif replaces is None:
        switches = any(isinstance(p, DoseProposal) for p in switch.proposals)
        blocks.append(f"Stop the {target.drug} order when the alternative starts"
                      + (": each switch offered here discontinues it as it orders." if switches else "."))
    summary = (
        f"{target.drug.capitalize()} despite {documented}: "
        + _switch_words(conditions, target.drug, foscarnet, mari, switch.already)
    )
    return Finding(
        summary=summary,
        detail="\n\n".join(blocks),
        sources=cite("clinical-brief", *switch.labels, *sot_guideline(facts), *mutation_sources(blocks)),
        proposals=tuple(proposals),
        selection="at-most-one",  # foscarnet or maribavir, not both
        **common,
    )


def _prophylaxis_alternative(target: TherapyOrder, barriers: tuple[str, ...], resistant: bool, why: str) -> Finding:
    """Prophylaxis with a drug documented resistant or not tolerated (letermovir with a UL56/UL89/UL51
    mutation, a prophylactic valganciclovir dose with ganciclovir resistance).  The sources name no
    prophylaxis switch for this case, and the treatment drugs are not prophylaxis: infectious diseases
    chooses."""
    drug = target.drug
    blocks = [
        f"**Order:** {target.describe()} ({target.order.id}): prophylaxis.",
        "**Documented:** " + "; ".join(barriers) + ".",
        (
            f"Prophylaxis with {drug} may not protect against the documented resistant virus (resistance definitions)."
            if resistant else f"{drug.capitalize()} is documented as not tolerated."
        ),
        "Prophylaxis is not treatment: if CMV infection or disease needs treatment, the treatment regimen "
        "applies whatever prophylaxis was used (clinical brief). Choose the prevention strategy with "
        "infectious diseases.",
    ]
    return Finding(
        topic="alternative-therapy",
        indicator="warning",
        summary=f"{drug.capitalize()} prophylaxis despite {why}: consult infectious diseases",
        detail="\n\n".join(blocks),
        sources=cite(*(("resistance-definitions",) if resistant else ()), "clinical-brief", f"{drug}-label"),
        proposals=(infectious_diseases_consult(f"{drug} prophylaxis despite {why}: choose the prevention strategy"),),
        override_reasons=("specialist-directed", "patient-specific-regimen", "benefit-outweighs-risk"),
        order_id=target.order.id,
        key=f"alternative-therapy|{target.order.id}",
    )


def _switch_words(
    conditions: ConditionFacts, ordered: str, foscarnet: RenalDose | CannotDose | None, maribavir: DoseProposal | None,
    already: tuple[str, ...] = (),
) -> str:
    """The alternative card's advice in a summary: only what it offers."""
    unsuitable = isinstance(foscarnet, RenalDose) and foscarnet.not_recommended  # e.g. on dialysis
    if foscarnet is not None and not unsuitable:
        words = f"foscarnet {fmt(foscarnet.dose_mg)} mg {foscarnet.schedule}" if usable(foscarnet) else "foscarnet"
        if mutation_may_affect(conditions, "foscarnet"):
            return f"consider {words} after checking the genotype report"
        if not usable(foscarnet):  # no dose without the inputs the card names: say what is offered now
            words += " (dose: inputs needed)" + (
                f" or maribavir {fmt(maribavir.dose_mg)} mg {maribavir.schedule}" if maribavir is not None else "")
        return f"switch to {words}"
    advice = (
        f"consider maribavir {fmt(maribavir.dose_mg)} mg {maribavir.schedule}" if maribavir is not None
        else f"{' and '.join(already)} already ordered: stop the {ordered}" if already
        else "consult infectious diseases"
    )
    if ordered != "foscarnet" and documented_resistant(conditions, "foscarnet"):
        advice += " (foscarnet resistant)"
    elif unsuitable:
        advice += " (foscarnet not advised: kidneys)"
    return advice


def _short(words: str) -> str:
    """The first clause of an indication, for a summary."""
    first = words.split(",")[0].split(" (")[0].split(":")[0]
    return first[0].upper() + first[1:] if first else first
