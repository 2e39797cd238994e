"""Population-specific guidance: HSCT pre-emptive therapy and monitoring, solid-organ transplant,
HIV with CMV retinitis, IBD with CMV colitis, and the disease sites with their own advice (CNS
disease, pneumonitis)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Collection

from cds_service.clinical import dose_tables as T
from cds_service.clinical.drugs import GANCICLOVIR_FAMILY, SHOWN_ORDERS, describe_order
from cds_service.clinical.findings import (
    ConsultProposal,
    Finding,
    LabOrderProposal,
    Proposal,
    StopOrderProposal,
    carried_stops,
)
from cds_service.clinical.inputs import fitting, treatment_level_viraemia
from cds_service.clinical.missing_data import retrieved
from cds_service.clinical.monitoring import course_end_pcrs, latest_dated_pcr, pcr_overdue, pp65_dated, unread_since, vl_dated
from cds_service.clinical.regimens import (
    DRUG_WORDS,
    IMMUNOSUPPRESSANT_CLASSES,
    MONITORING_PROPOSALS,
    POST_TRANSPLANT,
    RETINITIS_INDUCTION_DAYS,
    Indication,
    TherapyOrder,
    TherapyState,
    disease_indication,
    documented_barriers,
    documented_by,
    documented_resistant,
    dose_block,
    dose_for,
    dose_words,
    evidence_lines,
    family_stops,
    missing_inputs,
    monitoring_line,
    mutation_caveat,
    mutation_sources,
    no_treatment_words,
    plan_blocks,
    plan_labels,
    plan_proposals,
    plan_summary,
    prophylaxis_note,
    regimen_line,
    regimen_proposal,
    start_plan,
    usable,
)
from cds_service.clinical.renal_dosing import RenalDose, out_of_scope
from cds_service.clinical.sources import cite
from cds_service.clinical.therapy import above_its_band, matches_band
from cds_service.clinical.toxicity import foscarnet_electrolytes_block
from cds_service.facts.conditions import ACUTE_SEVERE_UC, HSCT, STEROIDS_FAILING_UC, T_CELL_DEPLETION, transplant_label
from cds_service.facts.model import ClinicalFacts, Pp65Result
from cds_service.facts.medications import RECENT_ORDER_DAYS
from cds_service.frozen import frozen
from cds_service.policy import Policy

# Orders that deplete T cells (an HSCT monitoring-window extension): names as ordered.
T_CELL_DEPLETING = ("alemtuzumab", "campath", "thymocyte", "thymoglobulin", "atgam", "grafalon")
IVIG_NAMES = ("immune globulin", "immunoglobulin", "ivig")
# Immune globulins against another pathogen or antigen (hepatitis B, rabies, anti-D ...) are not the adjunct the
# brief means; CMV immune globulin is.
OTHER_IMMUNE_GLOBULINS = ("hepatitis", "rabies", "tetanus", "varicella", "zoster", "rho(d)", "rho (d)", "anti-d",
                          "botulism", "anthrax", "vaccinia", "thymocyte", "lymphocyte")

# ---------------------------------------------------------------------------------------------
# HSCT: the monitoring window and pre-emptive therapy


@frozen
class HsctWindow:
    transplant: date
    day: int  # days since transplant at evaluation
    days: int  # length of the window that applies
    extended_by: tuple[str, ...]  # why the extended window applies

    @property
    def open(self) -> bool:
        return 0 <= self.day <= self.days

    def describe(self) -> str:
        if self.day < 0:  # a date to come (or a wrong one): no window yet
            return f"HSCT {self.transplant.isoformat()}: a date {-self.day} days from now, so no CMV monitoring window yet"
        text = f"HSCT {self.transplant.isoformat()}: day {self.day}; CMV monitoring window {self.days} days"
        if self.extended_by:
            text += " (extended: " + "; ".join(self.extended_by) + ")"
        return text + ("" if self.open else ", now past it")


def hsct_window(facts: ClinicalFacts, policy: Policy) -> HsctWindow | None:
    """The HSCT CMV monitoring window: at least 100 days, 1 year with chronic GVHD, prolonged
    immunosuppression or T-cell depletion (policy settings).  None without an HSCT date: the window
    is never assumed."""
    c = facts.conditions
    if "hsct" not in c.populations or c.hsct_date is None:
        return None
    day = (facts.evaluated_at.date() - c.hsct_date).days
    extended: list[str] = []
    if c.chronic_gvhd:
        gvhd = [e for e in c.evidence if "gvhd" in e.label.lower() or "graft" in e.label.lower()]
        extended.append("chronic GVHD" + (f" ({gvhd[0].source_id})" if gvhd else ""))
    if day > policy.hsct_monitoring_days:
        agents = [m for m in facts.active_medications if any(m.is_(k) for k in IMMUNOSUPPRESSANT_CLASSES)]
        if agents:
            names = ", ".join(dict.fromkeys(m.ingredient or m.drug_text or "unnamed" for m in agents))
            extended.append(f"immunosuppression beyond day {policy.hsct_monitoring_days}: {names}")
    depleting = [m for m in facts.medications if _named(m, T_CELL_DEPLETING)]
    if depleting:
        extended.append("T-cell depletion: " + ", ".join(m.drug_text or m.ingredient or m.id for m in depleting))
    else:
        # Said by the transplant's own condition (not ATG for aplastic anaemia years before, or a kidney's rejection).
        transplant = {e.source_id for e in c.evidence if e.label == HSCT.label}
        said = [e for e in c.evidence if e.label == T_CELL_DEPLETION.label and e.source_id in transplant]
        if said:
            extended.append(f"T-cell depletion ({said[0].source_id}: {said[0].matched_by})")
    days = policy.hsct_extended_monitoring_days if extended else policy.hsct_monitoring_days
    return HsctWindow(c.hsct_date, day, days, tuple(extended))


def _named(order, names) -> bool:
    text = " ".join(t for t in (order.ingredient, order.drug_text) if t).lower()
    return any(n in text for n in names)


def _threshold_note(facts: ClinicalFacts, policy: Policy) -> str:
    threshold = policy.preemptive_viral_load_iu_ml
    rule = (
        f"Pre-emptive trigger (local policy): {policy.preemptive_pp65_positive} positive pp65 antigen test(s) or "
        f"{policy.preemptive_consecutive_pcr} consecutive positive CMV PCRs; positive = detected"
    )
    if threshold > 0:
        rule += f" at or above {threshold:g} IU/mL"
        if any(r.scale == "copies/mL" for r in facts.viral_load.results):
            rule += " (the threshold is set in IU/mL: copies/mL results are not compared with it)"
    if "hsct" not in facts.conditions.populations:
        # The brief gives its trigger for HSCT; after solid-organ transplant it names none.
        rule += ". The clinical brief gives a trigger for HSCT only; after solid-organ transplant the local policy decides"
    return rule + "."


def preemptive_trigger(facts: ClinicalFacts, policy: Policy) -> str | None:
    """Viraemia at the level that starts pre-emptive therapy (the same rule order safety uses)."""
    return treatment_level_viraemia(facts, policy)


def regimen_indication(facts: ClinicalFacts, policy: Policy, window: HsctWindow | None) -> Indication | None:
    """Why the first-line regimen applies: CMV disease (HIV retinitis alone has its own regimen), or
    viraemia meeting the pre-emptive trigger after transplant (outside an open HSCT window, where
    the HSCT card proposes pre-emptive therapy)."""
    disease = disease_indication(facts)
    if disease is not None:
        return None if facts.conditions.hiv_retinitis_only else disease
    if not facts.conditions.populations & POST_TRANSPLANT or (window is not None and window.open):
        return None
    trigger = preemptive_trigger(facts, policy)
    if trigger is None:
        return None
    return Indication(False, "CMV viraemia needing pre-emptive therapy", (trigger,), _threshold_note(facts, policy))


def hsct_preemptive(facts: ClinicalFacts, policy: Policy, therapy: TherapyState, window: HsctWindow | None) -> Finding | None:
    """hsct-preemptive: in the monitoring window, without CMV disease or treatment: start pre-emptive
    therapy when the trigger is met, else remind of weekly PCR when it is overdue."""
    if window is None or not window.open or facts.conditions.cmv_disease or therapy.in_course:
        return None
    trigger = preemptive_trigger(facts, policy)
    base = [f"**{window.describe()}.**", _threshold_note(facts, policy)]
    common = dict(topic="hsct-preemptive", key="hsct-preemptive")
    if trigger is not None:
        plan = start_plan(facts, policy, "oral")
        blocks = [
            *base,
            f"**Trigger met:** {trigger}." + ("" if plan.treatment_unknown else " No anti-CMV treatment on record."),
            "Pre-emptive therapy is preferred over universal ganciclovir prophylaxis after HSCT; it uses the "
            "treatment drugs and doses (oral valganciclovir or IV ganciclovir), for at least 2 weeks and until "
            "CMV DNA is no longer detected.",
            *plan_blocks(plan, "Start now"),
            *prophylaxis_note(therapy, "infection", plan),
        ]
        return Finding(
            indicator="warning",
            summary=f"HSCT day {window.day}: {trigger.split(':')[0]}: start pre-emptive {plan_summary(plan)}",
            detail="\n\n".join(blocks),
            proposals=(*plan_proposals(plan, therapy), *MONITORING_PROPOSALS),
            selection="any",
            sources=cite("clinical-brief", *plan_labels(plan)),
            override_reasons=("already-addressed", "specialist-directed", "not-clinically-relevant"),
            **common,
        )
    due = pcr_overdue(facts, policy, or_pp65=True)
    # The trigger met by results too old to start therapy on, or but for a result between them that could not
    # be used (it may have been negative): repeat the test now.
    unacted = treatment_level_viraemia(facts, policy, stale=True)
    broken = None if unacted else treatment_level_viraemia(facts, policy, broken=True)
    if due is None and broken is None:
        return None
    # The newest PCR taken could not be read: it may have been positive, so it is to confirm or repeat now.
    latest = latest_dated_pcr(facts)
    unreadable = due is not None and latest is not None and unread_since(facts, latest.effective) is not None
    if unacted or broken:
        summary = (f"HSCT day {window.day}: positive CMV results "
                   f"{'not repeated' if unacted else 'with an unreadable PCR between them'}: repeat CMV PCR now")
    elif unreadable:
        summary = f"HSCT day {window.day}: the newest CMV PCR could not be read: confirm or repeat it now"
    else:
        summary = f"HSCT day {window.day} of {window.days}: weekly CMV PCR (or pp65) monitoring is overdue"
    return Finding(
        indicator="warning" if unacted or broken or unreadable else "info",
        summary=summary,
        detail="\n\n".join([
            *base,
            *([f"**Overdue:** {due}."] if due else []),
            *([f"**Trigger met, but more than {policy.preemptive_result_max_age_days} days ago:** {unacted}. "
               "Repeat the CMV PCR now: if it is positive, pre-emptive therapy is due."] if unacted else []),
            *([f"**Positive, but not in a row:** {broken}; a result taken between them could not be used (the status "
               "card says which) and may have been negative. Repeat the CMV PCR now: if it is positive, pre-emptive "
               "therapy is due."] if broken else []),
            "Monitor CMV by PCR (or pp65) weekly through the window.",
        ]),
        proposals=(LabOrderProposal("Order CMV PCR weekly", "cmv-pcr", recurrence="weekly", recommended=True),),
        sources=cite("clinical-brief"),  # monitoring only: no drug's label
        override_reasons=("monitoring-arranged", "lab-result-pending", "newer-result-elsewhere"),
        **common,
    )


# ---------------------------------------------------------------------------------------------
# Disease sites


def cns_combination(
    facts: ClinicalFacts,
    policy: Policy,
    therapy: TherapyState,
    *,
    target: TherapyOrder | None = None,
    planned: str | None = None,
    leaving: Collection[str] = (),
    offered_on: Finding | None = None,
) -> Finding | None:
    """cns-disease-combination: CMV encephalitis/myelitis with ganciclovir (ordered, on record or
    proposed) but no foscarnet: ganciclovir plus foscarnet may be preferred initially.  Not when
    foscarnet is documented resistant: there is no combination to propose; nor for a ganciclovir order
    another card moves off (`leaving`: counts below the label, resistance, intolerance), which is not
    continued.  `offered_on`: a card that already starts foscarnet (a switch of another course): the
    advice stands, and points there instead of ordering a second course."""
    conditions = facts.conditions
    if "cns" not in conditions.cmv_disease_sites or therapy.on({"foscarnet"}) or documented_resistant(conditions, "foscarnet"):
        return None
    # "Initially": not once foscarnet was given in this course (ended among the orders read), a course on record
    # has brought the CMV PCR to not detected (untreated CNS disease can be PCR-negative in blood), or the course
    # has stepped down from IV ganciclovir to oral valganciclovir (after clinical improvement).
    latest = facts.viral_load.latest
    iv_given = any(t.drug == "ganciclovir" and t.kind == "treatment" for t in (*therapy.active, *therapy.ended))
    oral = any(t.drug == "valganciclovir" for t in therapy.treating) or (target is not None and target.drug == "valganciclovir")
    cleared = bool(therapy.treating) and latest is not None and latest.negative
    if any(t.drug == "foscarnet" and t.kind == "treatment" for t in therapy.ended) or cleared or (iv_given and oral):
        return None
    if target is not None:
        continued = target.drug in GANCICLOVIR_FAMILY and target.order.id not in leaving
        with_what = f"the draft {target.order.describe()}" if continued else None
        given = target.drug
    else:
        on = [t for t in therapy.on(GANCICLOVIR_FAMILY, drafts=False) if t.order.id not in leaving]
        with_what = on[0].order.describe() if on else (
            "IV ganciclovir as proposed in the treatment-regimen card" if planned in GANCICLOVIR_FAMILY else None
        )
        given = on[0].drug if on else "ganciclovir"  # the regimen card's IV ganciclovir
    if with_what is None:
        return None
    # Oral valganciclovir with no IV ganciclovir before it or drafted with it starts the course: the brief starts
    # disease on IV.  Changing the draft is left to the clinician (a change here would undo the renal card's dose
    # of it, accepted after): the card gives the IV dose for this patient.
    oral_start = given == "valganciclovir" and not iv_given and not any(
        t.drug == "ganciclovir" and t.kind == "treatment" for t in therapy.drafts)
    iv = dose_for("ganciclovir", "induction", facts, policy) if oral_start else None
    foscarnet = dose_for("foscarnet", "induction", facts, policy)
    # On an order hook the missing-data card says what to measure; on patient-view this card does.
    proposals: tuple[Proposal, ...] = (
        (regimen_proposal(foscarnet, verb="Add"),) if usable(foscarnet) else () if target else missing_inputs(foscarnet)
    )
    add = f"add foscarnet {foscarnet.dose_mg:g} mg {foscarnet.schedule}" if usable(foscarnet) else "add foscarnet"
    if offered_on is not None:
        proposals, add = (), "foscarnet is offered on another card"
    blocks = [
        f"**Disease:** {disease_indication(facts).words}. **Ganciclovir:** {with_what}.",
        "For CNS disease ganciclovir **plus** foscarnet may be preferred initially (clinical brief).",
        ("**Oral valganciclovir starts this course.** For CMV disease the brief gives IV ganciclovir 5 mg/kg every "
         "12 h for the first 3-5 days, and oral valganciclovir only after clinical improvement"
         + (f"; for this patient's kidneys IV ganciclovir {dose_words(iv)} (label's renal table)." if usable(iv) else ".")
         ) if oral_start else None,
        (f'**Foscarnet** is offered on the card "{offered_on.summary}": choosing it there makes the combination '
         "(one foscarnet course, not two).") if offered_on is not None else dose_block("Add", foscarnet),
        T.FOSCARNET_HYDRATION if offered_on is None and usable(foscarnet) else None,  # as every card proposing it says
        foscarnet_electrolytes_block(facts, policy) if usable(foscarnet) else None,
        mutation_caveat(conditions, ("foscarnet",)),
        "Combined marrow (ganciclovir) and renal/electrolyte (foscarnet) toxicity: creatinine and "
        "electrolytes 2-3 times weekly, CBC at least weekly.",
    ]
    blocks = [b for b in blocks if b]
    return Finding(
        topic="cns-disease-combination",
        indicator="info",
        summary=f"CMV encephalitis/myelitis: {'IV ' if oral_start else ''}ganciclovir plus foscarnet may be preferred "
                f"initially; {add}",
        detail="\n\n".join(blocks),
        sources=cite("clinical-brief", "foscarnet-label", *(("ganciclovir-label",) if usable(iv) else ()),
                     *mutation_sources(blocks)),
        proposals=proposals,
        override_reasons=("patient-specific-regimen", "specialist-directed", "not-clinically-relevant"),
        order_id=target.order.id if target else None,
        key="cns-disease-combination",
    )


def pneumonitis_ivig(facts: ClinicalFacts) -> Finding | None:
    """pneumonitis-ivig: CMV pneumonitis without immunoglobulin on record: none active, drafted, or ended among
    the orders read (immunoglobulin given is not proposed again).  A hyperimmune globulin against another
    pathogen or antigen (OTHER_IMMUNE_GLOBULINS) is not it."""
    if "pneumonitis" not in facts.conditions.cmv_disease_sites:
        return None
    if any(_named(m, IVIG_NAMES) and not _named(m, OTHER_IMMUNE_GLOBULINS) for m in (*facts.medications, *facts.drafts)):
        return None
    return Finding(
        topic="pneumonitis-ivig",
        indicator="info",
        summary="CMV pneumonitis: consider adjunctive IV immunoglobulin every other day for 3-5 doses",
        detail=(
            f"**Disease:** {disease_indication(facts).words}. "
            + (f"No immunoglobulin on record (active, or ended in the last {RECENT_ORDER_DAYS} days).\n\n"
               if retrieved(facts, "medications") else
               "Whether immunoglobulin is already given is not known: the orders on record could not be retrieved.\n\n")
            + "Adjunctive IV immunoglobulin every other day for 3-5 doses may be considered alongside antiviral "
            "therapy (clinical brief). The sources encoded here give no product or dose per kg: order it per "
            "local protocol."
        ),
        sources=cite("clinical-brief"),
        override_reasons=("not-clinically-relevant", "specialist-directed", "already-addressed"),
        key="pneumonitis-ivig",
    )


# ---------------------------------------------------------------------------------------------
# HIV with CMV retinitis


# The induction courses the retinitis card steps down to maintenance after RETINITIS_INDUCTION_DAYS, each
# to the drug of its maintenance: valganciclovir 21 days (label; brief), foscarnet 2-3 weeks (its label,
# whose indication is CMV retinitis in AIDS: past 3 weeks the induction is over).
RETINITIS_MAINTENANCE_DRUG = {"valganciclovir": "valganciclovir", "ganciclovir": "valganciclovir", "foscarnet": "foscarnet"}
STEPPED_DOWN = "stepped down to maintenance"  # why the step-down stops the induction order
FOSCARNET_RETINITIS_REGIMEN = (
    "induction 90 mg/kg every 12 h or 60 mg/kg every 8 h for 2-3 weeks, then maintenance 90 mg/kg/day, up to "
    "120 mg/kg/day, renally adjusted; hydration (750-1000 mL) with each dose."
)


def _early_step_down(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, target: TherapyOrder, leaving: Collection[str],
    regimen: str, art_line: str, art_short: str,
) -> Finding | None:
    """A ganciclovir-family draft at the maintenance dose for retinitis, given before the 21 days of its induction
    on record are over (the regimen's induction is 21 days), or, beside other CMV disease (not CNS disease, the
    CNS card's), before that disease is cleared in blood (course_end_pcrs: it is treated until then).  Stepping
    down is for the clinician to decide, so nothing is proposed: the card says what is still to come."""
    c = facts.conditions
    if not (c.hiv_retinitis and "cns" not in c.cmv_disease_sites and target.order.is_draft
            and target.drug in GANCICLOVIR_FAMILY and target.phase == "maintenance"):
        return None
    today = facts.evaluated_at.date()
    induction = [t for t in therapy.treating if not t.order.is_draft and t.drug in GANCICLOVIR_FAMILY
                 and t.kind == "treatment" and t.phase == "induction" and t.start is not None and t.begun(today)
                 and t.order.id not in leaving]
    if not induction:
        return None
    start = min(t.start for t in induction)
    day = ((target.begins or today) - start).days
    if day < 0:  # a draft dated before the induction began is no step-down of it
        return None
    ends = start + timedelta(days=RETINITIS_INDUCTION_DAYS)
    if day < RETINITIS_INDUCTION_DAYS:
        summary = (f"HIV CMV retinitis: maintenance from day {day} of induction; the regimen's induction is "
                   f"{RETINITIS_INDUCTION_DAYS} days (to {ends.isoformat()}); {art_short}")
        advice = (f"This draft steps down on day {day}: keep the induction to day {RETINITIS_INDUCTION_DAYS} "
                  f"({ends.isoformat()}) unless infectious diseases or ophthalmology decide otherwise.")
    elif not c.hiv_retinitis_only and course_end_pcrs(facts, policy) is None:
        summary = fitting(f"HIV CMV retinitis with other CMV disease: maintenance before that disease is cleared in "
                          f"blood; {art_short}", "HIV CMV retinitis with other CMV disease: maintenance before it is cleared")
        latest = latest_dated_pcr(facts)
        advice = (f"This draft steps down on day {day}, {RETINITIS_INDUCTION_DAYS} days of induction over, but the "
                  "other CMV disease is treated until CMV DNA is no longer detected in blood and it resolves clinically "
                  f"(clinical brief; here {policy.course_end_negative_pcr} undetectable weekly CMV PCRs, the newest within "
                  "the weekly interval, `CDS_POLICY_COURSE_END_NEGATIVE_PCR`): not on record yet (newest CMV PCR: "
                  f"{vl_dated(latest) if latest else 'none'}). Keep the induction dose until then unless infectious "
                  "diseases decide otherwise; repeat the CMV PCR weekly.")
    else:
        return None
    return Finding(
        topic="hiv-retinitis",
        indicator="warning",
        summary=summary,
        detail="\n\n".join([
            f"**Order:** {target.describe()}.",
            "**Induction on record:** " + "; ".join(f"{t.describe()} ({t.order.id})" for t in induction) + ".",
            regimen,
            advice,
            art_line,
        ]),
        sources=cite("clinical-brief", "valganciclovir-label"),
        override_reasons=("specialist-directed", "patient-specific-regimen", "already-addressed"),
        order_id=target.order.id,
        key=f"hiv-retinitis|{target.order.id}",
    )


def hiv_retinitis(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, target: TherapyOrder | None = None,
    leaving: Collection[str] = (), regimen_card: Finding | None = None,
) -> Finding | None:
    """hiv-retinitis: valganciclovir 900 mg twice daily for 21 days, then 900 mg once daily; optimise
    antiretroviral therapy.  Patient-view: start it (no treatment), step down (induction done: 21 days
    of ganciclovir or valganciclovir, or of foscarnet, its label's 2-3 weeks over; retinitis alone), or
    ART missing; order hooks: when ganciclovir or valganciclovir is ordered.  `leaving`: orders another
    card moves off (counts below the label, a switch): no step-down of them, and no regimen for such a
    draft (only the ART line, when ART is missing).  `regimen_card`: the treatment-regimen card that
    starts treatment (other CMV disease besides the retinitis): this card then starts none of its own."""
    c = facts.conditions
    if not c.hiv_retinitis:
        return None
    art = [m for m in facts.active_medications if m.is_("antiretroviral")]
    known = retrieved(facts, "medications")  # else an absence of ART proves nothing
    art_line = (
        "**Antiretroviral therapy on record:** " + "; ".join(f"{m.drug_text or m.ingredient} ({m.id})" for m in art)
        + ": optimise it alongside CMV treatment."
        if art
        else "**No antiretroviral therapy on record:** start (or record) ART alongside CMV treatment."
        if known
        else "**Antiretroviral therapy:** not known (orders on record not retrieved): start or optimise ART alongside "
        "CMV treatment."
    )
    art_short = "optimise ART" if art else "no ART on record" if known else "start or optimise ART"
    regimen = regimen_line(facts, "Regimen (label; clinical brief)", (
        "valganciclovir 900 mg twice daily for 21 days (induction), then 900 mg once daily (maintenance), renally "
        "adjusted; with food."
    ))
    foscarnet_regimen = regimen_line(facts, "Regimen (foscarnet label; clinical brief)", FOSCARNET_RETINITIS_REGIMEN)
    common = dict(
        topic="hiv-retinitis",
        sources=cite("clinical-brief", "valganciclovir-label"),
        override_reasons=("already-addressed", "specialist-directed", "patient-specific-regimen"),
    )
    if target is not None:
        early = _early_step_down(facts, policy, therapy, target, leaving, regimen, art_line, art_short)
        if early is not None:
            return early
        # An order that follows the regimen, with ART on record, needs no card (the dose and course
        # length have their own checks): only missing ART or a maintenance dose with no induction.
        # ART not known (orders on record not retrieved: the missing-data card says so) counts as on record here.
        if target.drug not in GANCICLOVIR_FAMILY or ((art or not known) and (target.kind != "prophylaxis" or target.order.id in leaving)):
            return None
        if target.order.id in leaving:
            # Not continued: its regimen is no advice for it (another card says what follows); ART still is.
            return Finding(
                indicator="info",
                summary="HIV CMV retinitis: no antiretroviral therapy on record: start (or record) ART",
                detail="\n\n".join([f"**Order:** {target.describe()}.", art_line]),
                order_id=target.order.id,
                key=f"hiv-retinitis|{target.order.id}",
                **common,
            )
        blocks = [f"**Order:** {target.describe()}.", regimen, art_line]
        if target.kind == "prophylaxis":
            blocks.insert(1, "This draft is at a maintenance dose with no induction course on record: induction comes first.")
        return Finding(
            indicator="info",
            summary=(f"HIV CMV retinitis: valganciclovir 900 mg twice daily 21 days, then 900 mg daily; {art_short}"
                     if not out_of_scope(facts) else f"HIV CMV retinitis: induction, then maintenance; {art_short}"),
            detail="\n\n".join(blocks),
            order_id=target.order.id,
            key=f"hiv-retinitis|{target.order.id}",
            **common,
        )
    ophthalmology = ConsultProposal("Request ophthalmology review", "ophthalmology", "CMV retinitis")
    if not therapy.in_course and regimen_card is not None:
        return Finding(
            indicator="warning",
            summary=f"HIV with CMV retinitis: treatment as on the regimen card; ophthalmology review; {art_short}",
            detail="\n\n".join([_retinitis_evidence(facts), f'**Treatment:** proposed on the card "{regimen_card.summary}" '
                                 "(one treatment course, not two).", art_line]),
            proposals=(ophthalmology,),
            key="hiv-retinitis",
            **common,
        )
    if not therapy.in_course:
        plan = start_plan(facts, policy, "oral")
        length = RETINITIS_INDUCTION_DAYS if plan.dose.drug == "valganciclovir" else None
        return Finding(
            indicator="warning",
            summary=fitting(*(f"HIV with CMV retinitis, {no_treatment_words(plan, short=True)}: start {plan_summary(plan)}"
                              + (f" for {length} days" if length else "") + art for art in (f"; {art_short}", ""))),
            detail="\n\n".join(
                [_retinitis_evidence(facts),
                 # The regimen of the drug started: foscarnet's own when ganciclovir is ruled out.
                 *((foscarnet_regimen, *plan_blocks(plan, "Start now (2-3 weeks)")) if plan.dose.drug == "foscarnet"
                   else (regimen, *plan_blocks(plan, "Start now (21 days)"))), art_line,
                 *prophylaxis_note(therapy, "disease", plan), monitoring_line(plan)]
            ),
            proposals=(
                *plan_proposals(plan, therapy, duration_days=length),
                ophthalmology,
                *MONITORING_PROPOSALS,
            ),
            selection="any",
            key="hiv-retinitis",
            **{**common, "sources": cite("clinical-brief", "valganciclovir-label", *plan_labels(plan))},
        )
    today = facts.evaluated_at.date()
    # No maintenance step-down for a course another card moves off (failing, ruled out, counts too low),
    # nor beside other CMV disease until it resolves in the blood (treated for at least 2 weeks and until CMV DNA
    # is no longer detected, the course-end PCRs: the 21 days of induction are longer; the clinician judges the
    # clinical resolution); never beside CNS disease (ganciclovir plus foscarnet initially).
    # Foscarnet only as the only treatment: beside ganciclovir or valganciclovir it is part of a combination.
    cleared = None if c.hiv_retinitis_only or "cns" in c.cmv_disease_sites else course_end_pcrs(facts, policy)
    other_disease_over = c.hiv_retinitis_only or cleared is not None
    foscarnet_alone = all(o.drug == "foscarnet" for o in therapy.treating if o.kind == "treatment")
    done = [
        t for t in therapy.treating
        if t.drug in RETINITIS_MAINTENANCE_DRUG and t.kind == "treatment" and (t.days_on(today) or 0) >= RETINITIS_INDUCTION_DAYS
        and t.order.id not in leaving and (t.drug != "foscarnet" or foscarnet_alone)
    ] if other_disease_over else []
    if done:
        t = done[0]
        maintenance = dose_for(RETINITIS_MAINTENANCE_DRUG[t.drug], "maintenance", facts, policy)
        # Valganciclovir tablets not recommended for the kidneys (below CrCl 10, haemodialysis): IV
        # ganciclovir's maintenance dose per its table, as the valganciclovir label says.
        tablets_ruled_out = (
            maintenance if maintenance.drug == "valganciclovir" and isinstance(maintenance, RenalDose)
            and maintenance.not_recommended else None
        )
        if tablets_ruled_out is not None:
            maintenance = dose_for("ganciclovir", "maintenance", facts, policy)
        # A new maintenance order that stops the induction order (even of the same drug): the record then
        # shows the induction before it, so the next view reads the new order as maintenance, not as a
        # prevention dose with no treatment on record.  A maintenance order already on record at that
        # dose stays: the induction (and the family's other orders) only stop.
        kin = therapy.kin(t) if usable(maintenance) else ()  # the family's other orders on record stop with it
        ordered = next((o for o in kin if o.drug == maintenance.drug and matches_band(o.order, maintenance, facts, policy)),
                       None)
        stopped = (t.order.id, *(o.order.id for o in kin if o is not ordered))
        # An induction order above its renal band now (the kidneys changed during it): the step-down, which
        # the renal card leaves to this card, is then what corrects an over-dose, and says so.
        over = above_its_band(t.order, t.drug, facts, policy)
        if ordered is not None:
            proposals: tuple[Proposal, ...] = (StopOrderProposal(
                f"Discontinue the induction order ({t.order.id})", t.order.id, STEPPED_DOWN,
                also=carried_stops(stopped[1:], STEPPED_DOWN)),)
        elif usable(maintenance):
            proposals = (regimen_proposal(maintenance, verb="Step down to", discontinues=stopped, stop_reason=STEPPED_DOWN,
                                          recommended=over is not None),)
        else:
            proposals = missing_inputs(maintenance)
        step = (
            f"{DRUG_WORDS[maintenance.drug]} {maintenance.dose_mg:g} mg {maintenance.schedule}"
            if usable(maintenance) else "maintenance"
        )
        foscarnet = t.drug == "foscarnet"
        induction_length = "label 2-3 weeks" if foscarnet else "plan 21"
        shown: set[str] = set()
        said = f"HIV CMV retinitis: induction {t.days_on(today)} days ({induction_length}): step down to {step}"
        return Finding(
            indicator="warning" if over else "info",
            summary=fitting(f"{said}; above its renal band; {art_short}", f"{said}; above its renal band")
            if over else f"{said}; {art_short}",
            detail="\n\n".join(
                [_retinitis_evidence(facts), f"**Induction:** {t.describe()} ({t.order.id}).",
                 *([] if c.hiv_retinitis_only else [
                     f"**The other CMV disease:** CMV PCR {'; '.join(vl_dated(r) for r in cleared)}: "
                     "no longer detected in blood after at least 2 weeks of treatment; its course can end once clinical "
                     "resolution is confirmed (clinical brief), and the retinitis goes on to maintenance."]),
                 *([f"**Above its renal band now:** {over}: the step-down corrects it."] if over else []),
                 foscarnet_regimen if foscarnet else regimen,
                 *([dose_block("Maintenance", tablets_ruled_out, shown)] if tablets_ruled_out else []),
                 dose_block("Maintenance instead" if tablets_ruled_out else "Maintenance", maintenance, shown),
                 *([f"**Maintenance already ordered:** {ordered.describe()} ({ordered.order.id}): stop the induction."]
                   if ordered else []),
                 *family_stops(t.drug, tuple(o for o in kin if o is not ordered), "the step-down offered here"), art_line]
            ),
            proposals=proposals,
            order_id=t.order.id,  # the induction course it steps down
            key="hiv-retinitis",
            **{**common, "sources": cite(
                "clinical-brief", *dict.fromkeys(f"{d}-label" for d in (RETINITIS_MAINTENANCE_DRUG[t.drug], maintenance.drug))
            )},
        )
    if not art and known:
        # The valganciclovir regimen only where it is what is given: not beside another drug's course, nor with
        # ganciclovir ruled out (documented resistance or intolerance).
        family = all(t.drug in GANCICLOVIR_FAMILY for t in therapy.treating) and not documented_barriers(c, "ganciclovir")
        return Finding(
            indicator="info",
            summary="HIV with CMV retinitis: no antiretroviral therapy on record: start or optimise ART",
            detail="\n\n".join([_retinitis_evidence(facts), *([regimen] if family else []), art_line]),
            key="hiv-retinitis",
            **common,
        )
    return None


def _retinitis_evidence(facts: ClinicalFacts) -> str:
    shown = "; ".join(
        evidence_lines(e for e in facts.conditions.evidence if "retinitis" in e.label.lower() or "hiv" in e.label.lower())
    )
    return f"**HIV with CMV retinitis:** {shown}." if shown else "**HIV with CMV retinitis.**"


# ---------------------------------------------------------------------------------------------
# IBD with CMV colitis


def ibd_colitis(facts: ClinicalFacts, policy: Policy, target: TherapyOrder | None = None) -> Finding | None:
    """ibd-cmv-colitis: IBD with CMV colitis on record (coded or in words) or suspected (CMV infection or viraemia).
    Order hooks: only when the colitis is not yet confirmed (the biopsy should come first)."""
    c = facts.conditions
    if "ibd" not in c.populations:
        return None
    latest = facts.viral_load.latest
    viraemia = latest is not None and latest.detected
    antigen = _antigenaemia(facts, policy)
    coded = "gi" in c.cmv_disease_sites
    if not (coded or c.cmv_infection or viraemia or antigen):
        return None
    if target is not None and coded:
        return None
    uc = "ulcerative-colitis" in c.ibd_types
    kind = "UC" if uc else "Crohn's disease" if "crohns" in c.ibd_types else "IBD"
    steroids = [m for m in facts.active_medications if m.is_("corticosteroid")]
    why = "CMV colitis on record" if coded else (
        f"suspected CMV colitis: CMV viraemia {vl_dated(latest)}" if viraemia
        else f"suspected CMV colitis: pp65 antigen {pp65_dated(antigen)}" if antigen
        else "suspected CMV colitis: CMV infection coded"
    )
    evidence = "; ".join(evidence_lines(c.evidence))
    confirmed = coded and c.colitis_biopsy_confirmed  # a record says the biopsy was done and positive
    blocks = [
        f"**{kind}:** {why}." + (f" Conditions: {evidence}." if evidence else ""),
        "**Diagnosis:** colonic biopsy with histology and immunohistochemistry is the gold standard "
        "(78-93% sensitivity)" + (
            ": the record says the colitis was confirmed that way." if confirmed
            else "; if the colitis was not confirmed that way, confirm it." if coded else "."
        ),
    ]
    if uc:
        screening = "CMV screening is mandatory in steroid-resistant acute severe ulcerative colitis"
        if steroids:
            screening += " (corticosteroids on record: " + "; ".join(describe_order(m) for m in steroids[:SHOWN_ORDERS]) + ")"
        blocks.append(screening + ".")
    blocks.append("**Treatment:** the same regimen as other CMV disease (IV ganciclovir, then oral valganciclovir).")
    return Finding(
        topic="ibd-cmv-colitis",
        indicator="info" if coded else "warning",
        summary=(
            f"{kind} with CMV colitis confirmed on biopsy: same treatment regimen" if confirmed
            else f"{kind} with CMV colitis: confirm on colonic biopsy (histology + IHC); same treatment regimen"
            if coded
            else f"{kind}, suspected CMV colitis: colonic biopsy with histology + immunohistochemistry"
        ),
        detail="\n\n".join(blocks),
        sources=cite("clinical-brief"),
        proposals=() if confirmed else (
            LabOrderProposal(
                "Request colonic biopsy: histology + CMV immunohistochemistry", "colonic-biopsy", recommended=not coded
            ),
        ),
        override_reasons=("already-addressed", "specialist-directed", "not-clinically-relevant"),
        order_id=target.order.id if target else None,
        key="ibd-cmv-colitis",
    )


def _antigenaemia(facts: ClinicalFacts, policy: Policy) -> Pp65Result | None:
    """The newest pp65 antigen test, when positive, within the monitoring interval and after the newest CMV PCR
    taken, read or not (CMV found in blood now); None otherwise."""
    newest = facts.pp65[0] if facts.pp65 else None
    if newest is None or not newest.positive or newest.effective is None:
        return None
    if facts.evaluated_at - newest.effective > timedelta(days=policy.viral_load_monitoring_days):
        return None
    pcrs = [r.effective for r in facts.viral_load.results] + list(facts.viral_load.unread)
    if any(when is None or when >= newest.effective for when in pcrs):
        return None  # a PCR since (or of unknown date) speaks instead
    return newest


def asuc_cmv_screening(facts: ClinicalFacts, policy: Policy) -> Finding | None:
    """ibd-cmv-colitis: acute severe UC with no CMV on record and no CMV test in the monitoring interval.
    The brief makes CMV screening mandatory once the flare is steroid-resistant: a warning when a
    condition says the steroids are failing, an info while corticosteroids are on record without that."""
    c = facts.conditions
    latest = facts.viral_load.latest
    if not c.acute_severe_uc or c.cmv_disease or c.cmv_infection or (latest is not None and latest.detected) \
            or _antigenaemia(facts, policy):
        return None  # with CMV on record, ibd_colitis speaks
    steroids = [m for m in facts.active_medications if m.is_("corticosteroid")]
    resistant = c.steroid_resistant_asuc
    untested = pcr_overdue(facts, policy, or_pp65=True)
    # Steroid-resistant, a recent blood test that found no CMV does not end it: colitis is shown by biopsy (a
    # reminder, info: biopsy results are not read, so it cannot tell one was done).
    if not (resistant or steroids) or (untested is None and not resistant):
        return None
    flare = documented_by(c, (ACUTE_SEVERE_UC.label, STEROIDS_FAILING_UC.label))
    tested = ([p for p in (f"CMV PCR {vl_dated(latest)}" if latest is not None else None,
                           f"pp65 antigen {pp65_dated(facts.pp65[0])}" if facts.pp65 else None) if p])
    blocks = [
        f"**{'Steroid-resistant a' if resistant else 'A'}cute severe ulcerative colitis:** {flare}.",
        *(["**Corticosteroids:** " + "; ".join(describe_order(m) for m in steroids[:SHOWN_ORDERS]) + "."]
          if steroids else []),
        f"**CMV tests:** {untested}." if untested else
        f"**CMV tests:** {'; '.join(tested)}: a blood test that finds no CMV does not rule out CMV colitis.",
        "**Clinical brief:** CMV screening is mandatory in steroid-resistant acute severe ulcerative colitis. "
        "The diagnosis rests on colonic biopsy with histology and immunohistochemistry (the gold standard, "
        "78-93% sensitivity); a blood CMV PCR does not show colitis but supports it.",
    ]
    summary = (
        "Steroid-resistant acute severe UC with no recent CMV test: CMV screening is mandatory (biopsy, CMV PCR)"
        if resistant and untested else
        "Steroid-resistant acute severe UC: a negative blood CMV test does not rule out CMV colitis: colonic biopsy"
        if resistant else
        "Acute severe UC on corticosteroids: if it does not respond, CMV screening is mandatory (biopsy, CMV PCR)"
    )
    return Finding(
        topic="ibd-cmv-colitis",
        indicator="warning" if resistant and untested else "info",
        summary=summary,
        detail="\n\n".join(blocks),
        sources=cite("clinical-brief"),
        proposals=(
            LabOrderProposal(
                "Request colonic biopsy: histology + CMV immunohistochemistry", "colonic-biopsy", recommended=resistant
            ),
            *([LabOrderProposal("Order CMV PCR", "cmv-pcr", recommended=resistant)] if untested else []),
        ),
        selection="any",
        override_reasons=("lab-result-pending", "newer-result-elsewhere", "already-addressed"),
        key="ibd-cmv-colitis",
    )


def letermovir_hsct_timing(facts: ClinicalFacts, therapy: TherapyState, target: TherapyOrder) -> Finding | None:
    """label-indication (info): a letermovir draft after HSCT that starts a course later than day 28, or
    is planned beyond day 200, or an order on record running beyond day 200 (patient-view) (the label:
    started on day 0-28, through day 100, extendable to 200).  Without an HSCT date nothing is assumed."""
    c = facts.conditions
    if target.drug != "letermovir" or "hsct" not in c.populations or c.hsct_date is None:
        return None
    on_course = any(t.drug == "letermovir" and t.order.id != target.order.id for t in (*therapy.active, *therapy.ended))
    start_day, end_day = _course_days(facts, target, c.hsct_date)
    # An order on record has run to today (or its end, when that came first); its late start was the order hooks'
    # to say.
    given_to = target.given_to(facts.evaluated_at.date())
    today_day = None if given_to is None else (given_to - c.hsct_date).days
    late = target.order.is_draft and not on_course and start_day > T.LETERMOVIR_HSCT_LATEST_START_DAY
    long = max(start_day, end_day or 0, today_day or 0) > T.LETERMOVIR_HSCT_EXTENDED_THROUGH_DAY
    if not (late or long):
        return None
    found = []
    if late:
        found.append(f"it starts on day {start_day} after the transplant, with no letermovir course on record")
    running = long and today_day is not None and today_day > T.LETERMOVIR_HSCT_EXTENDED_THROUGH_DAY
    if running:
        found.append(f"it is still given on day {today_day}" if given_to == facts.evaluated_at.date()
                     else f"it ran to day {today_day}")
    elif long:
        found.append(f"it runs to day {end_day}" if end_day is not None and end_day > start_day else f"it starts on day {start_day}")
    hsct = documented_by(c, (HSCT.label,)) or "on record"
    when = (f"started on day {start_day}" if late or not (running or end_day) else f"on day {today_day}" if running
            else f"planned to day {end_day}")
    return Finding(
        topic="label-indication",
        indicator="info",
        summary=(
            f"Letermovir {when} after HSCT: the label starts it by day {T.LETERMOVIR_HSCT_LATEST_START_DAY} and gives "
            f"it to day {T.LETERMOVIR_HSCT_THROUGH_DAY} (up to {T.LETERMOVIR_HSCT_EXTENDED_THROUGH_DAY})"
        ),
        detail="\n".join([
            f"**Ordered:** {target.order.describe()}: " + "; ".join(found) + ".",
            f"**HSCT:** {c.hsct_date.isoformat()} ({hsct}).",
            f"**Label:** letermovir prophylaxis after allogeneic HSCT (CMV-seropositive recipients) starts between "
            f"day 0 and day {T.LETERMOVIR_HSCT_LATEST_START_DAY} after the transplant and runs through day "
            f"{T.LETERMOVIR_HSCT_THROUGH_DAY}, extendable to day {T.LETERMOVIR_HSCT_EXTENDED_THROUGH_DAY}.",
        ]),
        sources=cite("letermovir-label"),
        override_reasons=("specialist-directed", "patient-specific-regimen", "already-addressed"),
        order_id=target.order.id,
        key=f"label-indication|{target.order.id}",
    )


def sot_prophylaxis_timing(facts: ClinicalFacts, target: TherapyOrder) -> Finding | None:
    """label-indication (info): prophylaxis after a solid-organ transplant planned (a draft) or running
    (an order on record) past the day its label gives (SOT_PROPHYLAXIS_WINDOWS: valganciclovir after a kidney, heart or kidney-pancreas
    transplant; letermovir after a kidney transplant, unless HSCT's window judges it), from the
    transplant's date as the facts give it; without one, or without a planned end, nothing."""
    c = facts.conditions
    if target.kind != "prophylaxis" or (target.drug == "letermovir" and "hsct" in c.populations):
        return None
    window = next((w for w in T.SOT_PROPHYLAXIS_WINDOWS
                   if w.drug == target.drug and w.organs <= c.transplant_organs), None)
    if window is None:
        return None
    dates = [c.transplant_dates[organ] for organ in window.organs if organ in c.transplant_dates]
    if not dates:
        return None
    since = max(dates)
    start_day, end_day = _course_days(facts, target, since)
    # An order on record has run to today, unless its end came first (an order left active past its end date):
    # then its end (end_day) says how far it ran.
    today = facts.evaluated_at.date()
    given_to = target.given_to(today)
    today_day = (today - since).days if given_to == today else None
    if max(start_day, end_day or 0, today_day or 0) <= window.through_day:
        return None
    shown = {transplant_label(organ) for organ in window.organs}  # its conditions, not complications
    ended = given_to is not None and given_to < today  # on record, its end date passed
    if today_day is not None and today_day > window.through_day:
        when = f"on day {today_day}"
    elif end_day is not None and (ended or end_day > start_day):
        when = f"{'ran' if ended else 'planned'} to day {end_day}"
    else:
        when = f"starting on day {start_day}"
    return Finding(
        topic="label-indication",
        indicator="info",
        summary=(f"{target.drug.capitalize()} prophylaxis {when} after {window.transplant} transplant: the label "
                 f"gives it to day {window.through_day}"),
        detail="\n".join([
            f"**Ordered:** {target.order.describe()}, {when}.",
            # The transplant's conditions; at least its date, which the window counts from.
            "**Transplant:** " + ("; ".join(evidence_lines(e for e in c.evidence if e.label in shown))
                                  or f"{window.transplant}, {since.isoformat()}") + ".",
            f"**Label:** {window.label}.",
        ]),
        sources=cite(window.source),
        override_reasons=("specialist-directed", "patient-specific-regimen", "already-addressed"),
        order_id=target.order.id,
        key=f"label-indication|{target.order.id}",
    )


def _course_days(facts: ClinicalFacts, t: TherapyOrder, since: date) -> tuple[int, int | None]:
    """(the day after `since` a draft starts, the day of its last dose if planned: TherapyOrder.planned_end)."""
    begins = t.begins or facts.evaluated_at.date()
    last = t.planned_end
    return (begins - since).days, (last - since).days if last else None
