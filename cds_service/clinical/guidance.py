"""Treatment guidance: what to do about the patient's CMV, as findings.

patient-view (no targets): for a patient with anything to do with CMV (a CMV condition, a viral
load, anti-CMV therapy, or an open HSCT monitoring window) a status card, plus whatever guidance
applies: the regimen to start, immunosuppression, alternatives, resistance, population and
disease-site specifics, course length and overdue monitoring.  Anyone else: nothing.

order-select / order-sign (targets = the drafts being checked): only the guidance about the
targeted anti-CMV orders (CNS combination, HIV retinitis, a short course, ...); the dose itself is
the order-safety checks' (renal-dose-adjustment), and a draft counts as the treatment being started,
so no regimen card.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Collection, Iterable

from cds_service.clinical import interactions, monitoring, populations, regimens, resistance, toxicity
from cds_service.clinical.dose_tables import FIXED_DOSE_DRUGS
from cds_service.clinical.drugs import ANTI_CMV, GANCICLOVIR_FAMILY, order_identity
from cds_service.clinical.findings import (
    DoseProposal,
    Finding,
    StopOrderProposal,
    acted_on,
    carried_stops,
    ended_by,
    replaced_orders,
    starting,
    switches,
)
from cds_service.clinical.missing_data import missing_data_finding, retrieved
from cds_service.clinical.inputs import awaiting_confirmation, treatment_level_viraemia, trigger_not_comparable
from cds_service.clinical.regimens import POST_TRANSPLANT, TherapyOrder, TherapyState
from cds_service.clinical.sources import cite
from cds_service.clinical.therapy import (
    BANDED_DRUGS,
    TWO_PROPHYLAXIS_AGENTS,
    assess_dose,
    enteral,
    label_dose_finding,
    phase_by_interval,
    renal_dose_finding,
)
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.policy import Policy


def guidance(
    facts: ClinicalFacts, policy: Policy, hook: str, targets: Iterable[MedicationOrder]
) -> list[Finding]:
    therapy = regimens.therapy_state(facts, policy)
    if hook == "patient-view":
        found = _patient_view(facts, policy, therapy)
    else:
        found = _order_guidance(facts, policy, therapy, {o.id for o in targets})
    return [f for f in found if f is not None]


def _patient_view(facts: ClinicalFacts, policy: Policy, therapy: TherapyState) -> list[Finding | None]:
    window = populations.hsct_window(facts, policy)
    # Acute severe UC and no CMV test: the one card for a record with no CMV on it.
    screening = populations.asuc_cmv_screening(facts, policy)
    if not monitoring.cmv_relevant(facts, therapy, window is not None and window.open):
        return [screening]
    if window is not None:
        context = (f"**{window.describe()}.**",)
    elif "hsct" in facts.conditions.populations:
        context = ("**HSCT:** transplant date not on record: the CMV monitoring window cannot be determined.",)
    else:
        context = ()
    # After transplant, off treatment, with nothing else to start: positives at the trigger too old to start
    # therapy on (not older than twice that: a long-past episode is the status card's history), or with a result
    # that could not be read between them (neither in an open HSCT window, whose card asks), or whose IU/mL
    # threshold cannot be compared with them (copies/mL), make the status card ask for a new PCR; a recent positive
    # short of the trigger's count makes it say that the next PCR decides.  None of them after a course that just
    # ended (the treatment-duration card speaks), nor with the orders on record not had (a course may be running).
    unacted = not_comparable = awaiting = broken = None
    quiet_otherwise = (
        not therapy.in_course and bool(facts.conditions.populations & POST_TRANSPLANT)
        and not facts.conditions.cmv_disease and treatment_level_viraemia(facts, policy) is None
        and not any(t.kind == "treatment" for t in therapy.ended) and retrieved(facts, "medications")
    )
    if quiet_otherwise:
        recent_enough = facts.evaluated_at - timedelta(days=2 * policy.preemptive_result_max_age_days)
        newest = facts.viral_load.results[0].effective if facts.viral_load.results else None
        outside_window = not (window and window.open)
        not_too_old = newest is not None and newest >= recent_enough
        if outside_window and not_too_old:
            unacted = treatment_level_viraemia(facts, policy, stale=True)
        if outside_window and not unacted:
            broken = treatment_level_viraemia(facts, policy, broken=True) or (
                treatment_level_viraemia(facts, policy, stale=True, broken=True) if not_too_old else None)
        not_comparable = trigger_not_comparable(facts, policy)
        # A first positive (short of the consecutive positives the trigger needs): the next PCR decides.
        awaiting = None if unacted or broken or not_comparable else awaiting_confirmation(facts, policy)
    found: list[Finding | None] = [
        monitoring.cmv_status(facts, policy, therapy, context, unacted, not_comparable, awaiting, broken)]

    indication = populations.regimen_indication(facts, policy, window)
    regimen = (
        regimens.treatment_regimen(facts, policy, therapy, indication)
        if indication
        else None
    )
    # Ganciclovir-family orders with counts below the label's limits (their critical card comes last:
    # it offers foscarnet only where no other card already replaces the order).  Treatment in induction
    # first: the first card's foscarnet, at its phase's dose, stops the others too.
    critical: dict[str, TherapyOrder] = {}
    if toxicity.counts_below_the_label(facts, policy):
        treatment_first = sorted(therapy.active, key=lambda t: (t.kind == "prophylaxis", t.phase != "induction"))
        critical = {t.order.id: t for t in treatment_first if t.drug in GANCICLOVIR_FAMILY}
    # Cidofovir or foscarnet on record the label says to stop for the kidneys: critical cards, last too.
    kidneys = {t.order.id: card for t in (*therapy.active, *therapy.between_doses)
               if (card := toxicity.kidneys_stop_on_record(t.order, t.drug, facts, policy)) is not None}
    # Foscarnet on record with electrolytes out of range: one card (the first foscarnet order's), also
    # beside a card that stops it (what it has done to them still needs correcting).
    foscarnet = next((t.order for t in therapy.active if t.drug == "foscarnet"), None)
    salts = toxicity.electrolytes(foscarnet, facts, policy) if foscarnet is not None else []
    found += [regimen, regimens.immunosuppression_reduction(facts, policy, therapy)]

    found += [regimens.alternative_therapy(facts, policy, t) for t in therapy.prophylaxis]
    if not regimens.needs_treatment(facts, policy):  # else the regimen card speaks, not the label's window
        found += [populations.sot_prophylaxis_timing(facts, t) or populations.letermovir_hsct_timing(facts, therapy, t)
                  for t in therapy.prophylaxis]
    moving_off: set[str] = set()  # courses a card already switches away from
    # Two courses of a drug (or of the ganciclovir family: the IV-to-oral overlap, a prophylactic dose
    # left running) at once: one card switches away from all of them, so that accepting every card
    # starts one replacement, not two, and accepting it alone leaves none of them given.  Courses of
    # different drugs failing at once: one alternative course too.  The first card that starts one
    # (foscarnet before maribavir) keeps it, and every other course's card stops its course, naming it,
    # whichever order the record lists them in.
    def off_card(t: TherapyOrder, switched_on: Finding | None) -> Finding | None:
        # Documented intolerance or resistance: the switch card already moves off the drug.
        others = therapy.kin(t)
        return regimens.alternative_therapy(
            facts, policy, t, also_stopping=others, switched_on=switched_on) or resistance.suspected_resistance(
            facts, policy, t, ruled_out=_ruled_out(t.order.id in critical, t.order.id in kidneys),
            also_stopping=others, switched_on=switched_on)

    offs: dict[str, Finding | None] = {}
    for t in therapy.treating:
        # The family's switch card (for another of its courses) stops this one too.
        offs[t.order.id] = None if t.order.id in moving_off else off_card(t, None)
        if offs[t.order.id] is not None:
            moving_off |= {t.order.id} | ({o.order.id for o in therapy.kin(t)} & acted_on(offs[t.order.id]))
    off_cards = [f for f in offs.values() if f is not None]
    switched = next((f for drug in ("foscarnet", "maribavir") if (f := starting([*found, *off_cards], drug))), None)
    for t in therapy.treating:
        off = offs[t.order.id]
        if off is not None and off is not switched and switched is not None:
            off = off_card(t, switched)
            moving_off |= {o.order.id for o in therapy.kin(t)} & acted_on(off)
        # An order ending while another treatment course, being given by then, goes on past it (the IV-to-oral
        # step-down at the treatment dose) is no end of treatment; a maintenance dose, an order on hold or one
        # starting later is.
        # (FHIR's end date is the last day given: a course starting the day after carries it on.  For HIV retinitis
        # the maintenance dose is the regimen's next step.)
        carried_on = t.planned_end is not None and any(
            o.order.id != t.order.id and (o.kind == "treatment" or facts.conditions.hiv_retinitis)
            and o.order.status in ("active", None)
            and (o.begins is None or o.begins <= t.planned_end + timedelta(days=1))
            and (o.planned_end is None or o.planned_end > t.planned_end)
            for o in therapy.treating)
        stopping = None if carried_on else monitoring.stopping_while_detectable(facts, policy, t)
        found += [off, monitoring.short_course(facts, t), stopping]
    found.append(monitoring.courses_can_end(facts, policy, therapy.treating))
    # A cidofovir course between doses is judged for resistance too (documented, or suspected): the
    # genotype, and a switch that starts the alternative (no order to stop: its next dose is not given).
    found += [off_card(t, switched) for t in therapy.between_doses]
    # No step-down to valganciclovir from a course that is failing or ruled out (it would be a second
    # replacement of the same order), nor when counts rule valganciclovir out.
    leaving = moving_off | critical.keys() | kidneys.keys()
    # After transplant, viraemia at the trigger on a maintenance dose: the treatment dose (not of a course leaving).
    breakthrough = regimens.maintenance_breakthrough(facts, policy, therapy, leaving)
    found.append(breakthrough)
    # Nor beside maribavir, which is not given with the ganciclovir family (the pair's card says so).
    beside_maribavir = any(t.drug == "maribavir" for t in therapy.active)
    step_down = None if critical or beside_maribavir else monitoring.oral_step_down(facts, policy, therapy)
    step_down = None if step_down is None or step_down.order_id in leaving else step_down
    if not therapy.in_course and regimen is None:
        # A course that ended while CMV was detectable (when no regimen card says to start again).
        ended = sorted((t for t in therapy.ended if t.planned_end), key=lambda t: t.planned_end)
        if ended:
            found.append(monitoring.stopping_while_detectable(facts, policy, ended[-1]))

    planned = None
    if regimen is not None and indication.disease:
        planned = regimens.start_plan(facts, policy, "iv").dose.drug
    if breakthrough is not None:  # the maintenance it stops is not what foscarnet is added to: its treatment dose is
        planned = next((p.drug for p in breakthrough.proposals if isinstance(p, DoseProposal)), None)
    found += [
        # Foscarnet added to ganciclovir for CNS disease, or pointed to where a card already starts it.
        populations.cns_combination(facts, policy, therapy, planned=planned,
                                    leaving=leaving | (acted_on(breakthrough) if breakthrough else set()),
                                    offered_on=starting(found, "foscarnet")),
        populations.pneumonitis_ivig(facts),
        populations.hiv_retinitis(facts, policy, therapy, leaving=leaving, regimen_card=regimen),
        populations.ibd_colitis(facts, policy),
        screening,
        populations.hsct_preemptive(facts, policy, therapy, window),
        monitoring.monitoring_plan(facts, policy, therapy),
    ]
    found += _critical_on_record(facts, policy, critical.values(), found) + list(kidneys.values()) + salts
    # An IV course off its renal band gets the correction, and its step-down waits for a view after it
    # (accepting both would stop the order and then change its dose); an order the step-down stops with it
    # (a prophylactic dose) is not re-dosed.
    # Orders on record not to be given together: said before any re-dosing of them (a correction accepted
    # after a stop would bring the order back; it waits for a view after the pair is resolved).
    pairs = _pairs_on_record(facts, policy, therapy, [*found, step_down])
    renal = _renal_doses_on_record(facts, policy, therapy, [*found, *pairs])
    if step_down is not None:
        if step_down.order_id in {f.order_id for f in renal}:
            step_down = None
        else:
            renal = [f for f in renal if f.order_id not in acted_on(step_down)]
    return found + [step_down] + renal + pairs + _courses_at_once(facts, therapy, [*found, step_down, *renal, *pairs])


def _courses_at_once(facts: ClinicalFacts, therapy: TherapyState, found: list[Finding | None]) -> list[Finding]:
    """duplicate-therapy on patient-view: courses on record being given at once (active, not on hold, not ending
    today: a handover is no overlap) that the brief does not combine: two of the ganciclovir family (valganciclovir
    is converted to ganciclovir: twice the exposure; warning, text only: which to keep is the clinician's), the family
    with foscarnet outside CNS disease or documented resistance (warning, text only), letermovir prophylaxis beside
    treatment (info, its discontinuation offered, as the order hooks do) or beside ganciclovir-family prophylaxis
    (info, text only: which agent to keep is the clinician's).  Not where another card (`found`) ends
    one of them: any stop or switch for the family's pair; for the others, a stop or a switch out of anti-CMV
    treatment (the IV-to-oral step-down keeps the patient on the family)."""
    today = facts.evaluated_at.date()
    given = [t for t in therapy.active if t.begun(today) and t.order.status in ("active", None)
             and (t.order.end is None or t.order.end > today)]
    # Only a card that asks for its change ends an order here: not an optional info (a step-down "after clinical
    # improvement"), which leaves both being given today.
    live = [f for f in found if f is not None and (f.indicator != "info" or any(
        getattr(p, "recommended", False) for p in f.proposals))]
    drug_of = {t.order.id: t.drug for t in therapy.active}
    ended = {order_id for f in live for order_id in ended_by(f, drug_of)}

    # Ended for good: stopped, or switched into a drug that is no anti-CMV treatment.
    gone = {order_id for f in live for order_id in ended_by(f, drug_of, staying=ANTI_CMV)}
    c = facts.conditions
    cards = []
    family = [t for t in given if t.drug in GANCICLOVIR_FAMILY and t.order.id not in ended]
    if len(family) > 1:
        cards.append(_at_once(family, "two ganciclovir-family orders", "check which to give", "valganciclovir is converted to ganciclovir: give "
                              "one or the other (IV ganciclovir, then oral valganciclovir after clinical improvement), not both",
                              ("clinical-brief", "valganciclovir-label")))
    treated = [t for t in given if t.order.id not in gone]
    pair = [t for t in treated if t.drug in GANCICLOVIR_FAMILY or t.drug == "foscarnet"]
    combined = "cns" in c.cmv_disease_sites or c.resistant_drugs or c.resistance_genes
    if not combined and {t.drug for t in pair} & GANCICLOVIR_FAMILY and any(t.drug == "foscarnet" for t in pair):
        cards.append(_at_once(pair, "ganciclovir family and foscarnet", "check which to give", "foscarnet is the alternative when ganciclovir "
                              "cannot be used; the brief combines them for CNS disease only (and where resistance calls "
                              "for it): choose one", ("clinical-brief", "foscarnet-label")))
    letermovir = [t for t in treated if t.drug == "letermovir"]
    treating = [t for t in treated if t.kind != "prophylaxis" and t.drug != "letermovir"]
    if letermovir and treating:
        stop = StopOrderProposal("Discontinue letermovir", letermovir[0].order.id, "treatment replaces prophylaxis",
                                 recommended=True, also=carried_stops((t.order.id for t in letermovir[1:]),
                                                                      "treatment replaces prophylaxis"))
        cards.append(_at_once([*letermovir, *treating], "letermovir prophylaxis beside treatment", "stop the letermovir", "letermovir is "
                              "prophylaxis only, not a treatment; once CMV is treated, the treatment applies whatever "
                              "prophylaxis was used", ("clinical-brief", "letermovir-label"), indicator="info",
                              proposals=(stop,)))
    # Not where a card ends or switches one of them (the start of treatment discontinues prophylaxis as it orders).
    prophylaxis = [t for t in given if t.kind == "prophylaxis" and t.drug in GANCICLOVIR_FAMILY and t.order.id not in ended]
    letermovir = [t for t in letermovir if t.order.id not in ended]
    if letermovir and prophylaxis and not treating:
        cards.append(_at_once([*letermovir, *prophylaxis], "two prophylaxis agents", "check which to give",
                              TWO_PROPHYLAXIS_AGENTS, ("clinical-brief", "letermovir-label"), indicator="info"))
    return cards


def _at_once(courses: list[TherapyOrder], what: str, ask: str, why: str, sources: tuple[str, ...],
             indicator: str = "warning", proposals: tuple = ()) -> Finding:
    return Finding(
        topic="duplicate-therapy",
        indicator=indicator,
        summary=f"Anti-CMV courses given at once: {what}: {ask}",
        detail="\n".join([
            "**On record, being given:** " + "; ".join(f"{t.describe()} ({t.order.id})" for t in courses) + ".",
            f"**Why not together:** {why}.",
        ]),
        sources=cite(*sources),
        proposals=proposals,
        override_reasons=("specialist-directed", "patient-specific-regimen", "already-addressed"),
        key="duplicate-therapy|" + "|".join(sorted(t.order.id for t in courses)),
    )


def _pairs_on_record(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, found: list[Finding | None]
) -> list[Finding]:
    """Orders on record the label says not to give together (maribavir with ganciclovir or valganciclovir), or
    gives another dose together (letermovir with cyclosporine), one card per agent naming all its partners (an
    agent already at the pair's dose gets none), unless another card (`found`) already ends one of them (a stop,
    a switch to another drug; not a dose correction, which keeps the pair)."""
    cards = [card for t in therapy.active for card in interactions.acted_pairs(t.order, facts, policy)]
    if not cards:
        return []  # the usual case: no such pair, nothing else to read
    drug_of = {t.order.id: t.drug for t in therapy.active}
    ended = {order_id for f in found if f is not None for order_id in ended_by(f, drug_of)}
    return [card for card in cards if not acted_on(card) & ended]


def _renal_doses_on_record(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, found: list[Finding | None]
) -> list[Finding]:
    """The renal-dose card of each order on record whose dose differs from the label's band for the
    clearance now (valganciclovir tablets the label does not recommend: IV ganciclovir instead), and the
    label-dose card of letermovir or maribavir at another dose than the label's: kidney function and
    co-medications change during a course, and a dose written for others is found here before the
    order is renewed.  Not for an order another card (`found`, or an earlier one of these) already
    switches, stops or corrects (accepted after that, an update would bring it back), nor for one whose
    phase the HIV retinitis card speaks of (induction done: maintenance).  Cidofovir is judged by the 5 mg/kg
    bands short of the label's 3 mg/kg step (toxicity.cidofovir_banded), and at the step by the step."""
    acted = {order_id for f in found if f is not None for order_id in acted_on(f)}
    acted |= {f.order_id for f in found if f is not None and f.topic == "hiv-retinitis" and f.order_id}
    cards: list[Finding] = []
    for t in therapy.active:
        if t.order.id in acted:
            continue
        if t.drug in FIXED_DOSE_DRUGS:
            # Letermovir or maribavir at another dose than the label's standard one, its co-medications having
            # changed (240 mg letermovir left after the cyclosporine stopped): as the order hooks say it.
            found_dose = label_dose_finding(t.order, t.drug, facts, policy)
            card = found_dose if isinstance(found_dose, Finding) else None
        elif t.drug not in BANDED_DRUGS or (t.drug == "ganciclovir" and enteral(t.order)):
            continue
        elif t.drug == "cidofovir" and not toxicity.cidofovir_banded(t.order, facts, policy):
            # At the label's 3 mg/kg step (creatinine up 0.3-0.4 mg/dL): a standing order gives the next dose.
            card = toxicity.cidofovir_step_on_record(t.order, facts, policy)
        else:
            a = assess_dose(t.order, t.drug, facts, policy)
            card = renal_dose_finding(t.order, a, facts, policy) if a.dose is not None or a.readings else None
            # Dialysis on record while a current clearance says otherwise: which is true decides the dose (an old
            # entry after a kidney transplant leaves the dialysis row's dose far too low): confirm, as the order
            # hooks' missing-data card asks (None when there is nothing to confirm).
            card = card or missing_data_finding(t.order, t.drug, [g for g in a.gaps if "dialysis" in g.items])
        if card is not None:
            cards.append(card)
            acted |= acted_on(card)
    return cards


def _ruled_out(counts: bool, kidneys: bool) -> str | None:
    """Why a course is not to be given at any dose (resistance.suspected_resistance's `ruled_out`)."""
    return toxicity.COUNTS_RULE_OUT if counts else toxicity.KIDNEYS_RULE_OUT if kidneys else None


def _critical_on_record(
    facts: ClinicalFacts, policy: Policy, courses: Iterable[TherapyOrder], found: list[Finding | None],
    drafted: Collection[MedicationOrder] = (),
) -> list[Finding | None]:
    """The critical count cards of ganciclovir-family orders on record, after the other cards (`found`).
    One card replaces an order, and one card starts foscarnet: each proposes foscarnet only for an order
    no other card already replaces (a switch, a correction, treatment started over prophylaxis), and
    only while no other card starts foscarnet (another critical order's card first).  On an order hook
    (`drafted`: the anti-CMV drafts being checked) none is proposed: the drafts are what follows."""
    replacing = {order_id: f for f in found if f is not None for order_id in replaced_orders(f)}
    foscarnet = starting(found, "foscarnet")
    cards: list[Finding | None] = []
    for t in courses:
        elsewhere = toxicity.Elsewhere.of(replacing.get(t.order.id), foscarnet)
        if elsewhere is None and drafted:
            elsewhere = toxicity.Elsewhere.drafted(drafted)
        card = _blood_counts_below_the_label(facts, policy, t, elsewhere)
        foscarnet = foscarnet or starting([card], "foscarnet")
        cards.append(card)
    return cards


def _order_guidance(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, target_ids: set[str]
) -> list[Finding | None]:
    found: list[Finding | None] = []
    needs_treatment = regimens.needs_treatment(facts, policy)
    counts_critical = toxicity.counts_below_the_label(facts, policy)
    # Where this call already starts treatment (a treatment draft nothing rules out, or a card changing
    # a draft into one): a prophylaxis draft's card then removes it rather than starting a second
    # course.  So treatment drafts come first; and a copy of a draft gets the advice once (as in order
    # safety).  Cidofovir is no such draft (its contraindications are order safety's to find), nor
    # foscarnet below the label's renal table.  On order-select, a ganciclovir-family prophylaxis draft
    # not selected is the one to change to the treatment dose.
    foscarnet_out = toxicity.foscarnet_below_the_table(facts)[0]
    drafted = next((t for t in therapy.drafts if t.kind != "prophylaxis" and t.drug != "cidofovir"
                    and not (t.drug == "foscarnet" and foscarnet_out)
                    and not (counts_critical and t.drug in GANCICLOVIR_FAMILY)
                    and not regimens.documented_barriers(facts.conditions, t.drug)), None)
    unselected = next((t for t in therapy.drafts if t.kind == "prophylaxis" and t.drug in GANCICLOVIR_FAMILY
                       and t.order.id not in target_ids and not counts_critical
                       and not regimens.documented_barriers(facts.conditions, t.drug)), None)
    treatment = (f"the draft {drafted.order.describe()}" if drafted
                 else f"the draft {unselected.order.describe()}, changed to the treatment dose" if unselected else None)
    # The card changing a treatment draft into an alternative (foscarnet, maribavir): one course, so the
    # switch cards of later treatment drafts remove them instead, naming it.
    alternative: Finding | None = None
    combined: list[tuple[TherapyOrder, set[str]]] = []  # treatment drafts, for the CNS combination
    seen: set[tuple] = set()
    targeted = [t for t in therapy.drafts if t.order.id in target_ids]
    # A ganciclovir-family prophylaxis draft before letermovir: that one becomes the treatment (changed
    # in place), and letermovir goes.
    # Then an induction draft before others, as the renal card picks the valganciclovir draft that becomes IV
    # ganciclovir (therapy._valganciclovir_no_tablets): both cards then act on the same draft, not each
    # start a course from a different one.
    for t in sorted(targeted, key=lambda t: (t.kind == "prophylaxis", t.drug not in GANCICLOVIR_FAMILY,
                                             t.phase != "induction")):
        if order_identity(t.order) in seen:
            continue
        seen.add(order_identity(t.order))
        family = t.drug in GANCICLOVIR_FAMILY
        # Counts below the label, or kidneys the label rules it out for: the draft is not continued, nor
        # corrected upward (its critical card removes it).
        kidneys = toxicity.kidneys_rule_out(t.order, t.drug, facts, policy)
        critical = (counts_critical and family) or kidneys
        # A switch away from the draft's drug stops that drug's orders on record too (the family's, for
        # ganciclovir): accepted alone, it must not leave the old drug running beside the new one.
        left = therapy.kin(t)
        switch = regimens.alternative_therapy(facts, policy, t, also_stopping=left, switched_on=alternative)
        if t.kind == "prophylaxis":
            # While CMV needs treatment, the prophylaxis-not-treatment card; otherwise the label's window.
            if needs_treatment:
                cards = [switch, regimens.prophylaxis_not_treatment(facts, policy, therapy, t, treatment_elsewhere=treatment)]
            else:
                cards = [
                    switch,
                    populations.letermovir_hsct_timing(facts, therapy, t),
                    populations.sot_prophylaxis_timing(facts, t),
                ]
        else:
            cards = [
                switch,
                resistance.maribavir_indication(facts, policy, therapy, t),
                populations.pneumonitis_ivig(facts),
                populations.ibd_colitis(facts, policy, target=t),
                monitoring.short_course(facts, t),
            ]
            if switch is None:
                # One card for the draft, from the first course it continues that is failing (two cards
                # would each change it).
                cards.append(next((r for course in _continued(therapy, t) if (r := resistance.suspected_resistance(
                    facts, policy, course, target=t, ruled_out=_ruled_out(counts_critical and family, kidneys),
                    switched_on=alternative, also_stopping=tuple(o for o in left if o is not course))) is not None), None))
        # Another anti-CMV drug drafted between cidofovir doses (with the next dose drafted too, order
        # safety's duplicate card speaks of the pair).
        if therapy.between_doses and t.drug != "cidofovir" and all(d.drug != "cidofovir" for d in therapy.drafts):
            cards.append(regimens.duplicate_between_cidofovir_doses(t, therapy.between_doses[0],
                                                                     policy.cidofovir_course_gap_days))
        replacing = next((f for f in cards if f is not None and t.order.id in replaced_orders(f)), None)
        if treatment is None and replacing is not None:
            treatment = f'proposed on the card "{replacing.summary}"'
        switching = next((f for f in cards if f is not None and switches(f, t.order.id, t.drug)), None)
        alternative = alternative or switching
        # No advice that continues a draft the counts rule out, the record argues against (documented
        # resistance or intolerance) or another card changes into another drug.
        leaving = {t.order.id} if critical or switch or switching else set()
        found += [populations.hiv_retinitis(facts, policy, therapy, target=t, leaving=leaving), *cards]
        if t.kind != "prophylaxis":
            combined.append((t, leaving))
    # Foscarnet added to a ganciclovir draft for CNS disease: not while a draft is switched to an alternative;
    # pointed to where a card already starts it (read once every draft's cards are known).
    offered_on = starting(found, "foscarnet")
    found += [populations.cns_combination(facts, policy, therapy, target=t, offered_on=offered_on,
                                          leaving=leaving | ({t.order.id} if alternative else set()))
              for t, leaving in combined]
    # A ganciclovir-family course on record with counts below the label, while another anti-CMV drug is
    # being ordered (foscarnet to add for CNS disease, letermovir, ...): its critical card, as on
    # patient-view.  Not beside a ganciclovir-family draft: that draft's critical card already stops the
    # family's orders on record.
    if not counts_critical or not targeted or any(t.drug in GANCICLOVIR_FAMILY for t in targeted):
        return found
    on_record = [t for t in therapy.active if t.drug in GANCICLOVIR_FAMILY]
    return found + _critical_on_record(facts, policy, on_record, found, [t.order for t in targeted])


def _continued(therapy: TherapyState, draft: TherapyOrder) -> tuple[TherapyOrder, ...]:
    """Active courses a draft continues (same drug, or the ganciclovir family); else, when it continues a
    course of its drug whose orders have ended (cidofovir ordered dose by dose, a course renewed the day
    its order ended), the newest of them: the doses given, judged from the course's start."""
    active = tuple(t for t in therapy.kin(draft) if t.kind != "prophylaxis")
    if active or draft.kind == "prophylaxis" or not (draft.start and draft.begins and draft.start < draft.begins):
        return active
    given = [e for e in therapy.ended if e.drug == draft.drug and e.kind != "prophylaxis" and e.start == draft.start]
    return (max(given, key=lambda e: e.planned_end or e.begins or date.min),) if given else ()


def _blood_counts_below_the_label(
    facts: ClinicalFacts, policy: Policy, t: TherapyOrder, elsewhere: toxicity.Elsewhere | None
) -> Finding | None:
    """Ganciclovir or valganciclovir on record with a count below the label's limits: the critical card
    order safety gives a draft.  A count only below the lab's range, or a missing one, is the
    monitoring cards' (an info card on every chart view would be noise)."""
    phase = regimens.switch_phase(t.phase or phase_by_interval(t.drug, t.order, facts)[0], facts, policy)
    found = toxicity.hematologic(t.order, t.drug, phase, t.phase_basis, facts, policy, elsewhere=elsewhere)
    return next((f for f in found if isinstance(f, Finding) and f.indicator == "critical"), None)
