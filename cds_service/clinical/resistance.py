"""Suspected refractory or resistant CMV (Chemaly 2019, updated Ljungman 2024; Kotton 2025).

Refractory: viral load up by more than 1 log10 after at least 2 weeks of appropriately dosed
therapy; probable refractory: unchanged or up by less than 1 log10 after 2 weeks.  "Unchanged" is
read as "not lower than at the start": the sources give no assay-variability margin, so none is
assumed here.  The comparison is between the result at (or in the monitoring interval just
before) the start of the course, or with none there the course's first result within that interval
after its start, and the latest result, on the same scale, taken at least 2 weeks into the course.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from cds_service.clinical.drugs import GANCICLOVIR_FAMILY, TREATMENT_AGENTS, cmv_drug, running_on_record
from cds_service.clinical.findings import DoseProposal, Finding, LabOrderProposal, Proposal, acted_on
from cds_service.clinical.inputs import fmt
from cds_service.clinical.monitoring import log10_of, vl_dated
from cds_service.clinical.regimens import (
    MIN_COURSE_DAYS,
    POST_TRANSPLANT,
    TherapyOrder,
    TherapyState,
    documented_resistant,
    dose_words,
    family_stops,
    infectious_diseases_consult,
    no_further_dose,
    refractory_documented,
    regimen_proposal,
    stop_with_kin,
    switch_options,
    usable,
)
from cds_service.clinical.renal_dosing import RenalDose
from cds_service.clinical.sources import cite
from cds_service.clinical.therapy import BANDED_DRUGS, as_ordered, assess_dose
from cds_service.facts.medications import RECENT_ORDER_DAYS
from cds_service.facts.model import RESISTANCE_GENES, ClinicalFacts, ViralLoadResult
from cds_service.frozen import frozen
from cds_service.policy import Policy

REFRACTORY_RISE_LOG10 = 1.0

# Genes to sequence after a treatment course, and those added when letermovir was given.
TREATMENT_GENES = "/".join(g for g, drugs in RESISTANCE_GENES.items() if set(drugs) & set(TREATMENT_AGENTS))
LETERMOVIR_GENES = "/".join(g for g, drugs in RESISTANCE_GENES.items() if "letermovir" in drugs)


def _genes_and_drugs() -> str:
    """'UL97: ganciclovir, maribavir; UL54: ganciclovir, cidofovir, foscarnet; UL56/UL89/UL51: letermovir'."""
    genes_of: dict[tuple[str, ...], list[str]] = {}
    for gene, drugs in RESISTANCE_GENES.items():
        genes_of.setdefault(drugs, []).append(gene)
    return "; ".join(f"{'/'.join(genes)}: {', '.join(drugs)}" for drugs, genes in genes_of.items())


GENES_AND_DRUGS = _genes_and_drugs()  # the resistance definitions in words, built once


@frozen
class Assessment:
    therapy: TherapyOrder
    days: int
    baseline: ViralLoadResult
    latest: ViralLoadResult
    change: float  # log10
    refractory: bool  # else probable refractory


def assess(facts: ClinicalFacts, policy: Policy, t: TherapyOrder) -> Assessment | None:
    """The viral-load response to a treatment course of at least 2 weeks, if it is not falling."""
    response = _response(facts, policy, t)
    return response if response is not None and response.change >= 0 else None


def falling(facts: ClinicalFacts, policy: Policy, t: TherapyOrder) -> Assessment | None:
    """The viral-load response to a treatment course of at least 2 weeks, if it is falling: not refractory."""
    response = _response(facts, policy, t)
    return response if response is not None and response.change < 0 else None


def _response(facts: ClinicalFacts, policy: Policy, t: TherapyOrder) -> Assessment | None:
    """The change in viral load from the start of a treatment course of at least 2 weeks to the newest result
    2 weeks or more into it, on one scale; None when it cannot be measured."""
    if t.kind != "treatment" or t.start is None:
        return None
    days = (facts.evaluated_at.date() - t.start).days
    if days < MIN_COURSE_DAYS:
        return None
    results = [r for r in facts.viral_load.results if r.effective is not None]
    latest = results[0] if results else None
    if latest is None or latest.scale is None or log10_of(latest) is None:
        return None  # not detected, below quantification or unquantified: nothing to compare
    if (latest.effective.date() - t.start).days < MIN_COURSE_DAYS:
        return None  # no result yet from 2 weeks into the course
    # The viral load at the start: the newest result of the monitoring interval before it, else (none was taken
    # then) the course's first result within that interval after it, before the drug has had time to act.
    interval = timedelta(days=policy.viral_load_monitoring_days)
    comparable = [r for r in results if r.scale == latest.scale and r is not latest and log10_of(r) is not None]
    baseline = next((r for r in comparable if t.start - interval <= r.effective.date() <= t.start), None)
    if baseline is None:
        baseline = next((r for r in reversed(comparable) if t.start < r.effective.date() <= t.start + interval), None)
    if baseline is None:
        return None
    change = round(log10_of(latest) - log10_of(baseline), 9)  # float noise first: tenfold is 1, never 1.0000000000000004
    return Assessment(t, days, baseline, latest, change, change > REFRACTORY_RISE_LOG10)


def _orders_test(card: Finding, test: str) -> bool:
    """Whether a card's suggestions (with what they carry) order the lab `test`."""
    return any(isinstance(q, LabOrderProposal) and q.test == test for p in card.proposals for q in (p, *getattr(p, "also", ())))


def _not_corrected(facts: ClinicalFacts, t: TherapyOrder, switched_on: Finding | None) -> tuple[str, str] | None:
    """Why an under-dosed course on record gets no dose correction, (for the summary, for the detail): another
    course's card switches to an alternative and stops this order too (the correction, accepted after it, would
    bring the order back), or maribavir is ordered beside a ganciclovir-family course (not given together: the
    drug-interaction card offers to stop one of them).  None when another card starts an alternative that
    does not stop this order: the course is then stopped (one course, not two), not corrected."""
    if switched_on is not None:
        if t.order.id in acted_on(switched_on):
            return ("the switch on another card stops it",
                    f'the card "{switched_on.summary}" switches to an alternative and stops this order too')
        return None  # the alternative starting there replaces this course: it is stopped, not corrected
    today = facts.evaluated_at.date()
    beside = [o for o in facts.drafts if cmv_drug(o) == "maribavir"] + [
        o for o in facts.active_medications if cmv_drug(o) == "maribavir" and (o.end is None or o.end >= today)]
    if t.drug in GANCICLOVIR_FAMILY and beside:
        return ("maribavir is ordered beside it",
                "maribavir is ordered beside it, and the two are not given together (antagonism: the drug-interaction "
                "card offers to stop one)")
    return None


def suspected_resistance(
    facts: ClinicalFacts, policy: Policy, t: TherapyOrder, target: TherapyOrder | None = None,
    ruled_out: str | None = None, also_stopping: tuple[TherapyOrder, ...] = (), switched_on: Finding | None = None,
) -> Finding | None:
    """suspected-resistance for the course `t`; on an order hook, `target` is the draft that
    continues it (its proposals then update that draft).  `ruled_out`: why the course's drug is not to
    be given (blood counts, kidneys: toxicity.COUNTS_RULE_OUT, KIDNEYS_RULE_OUT), so an under-dosed
    course is not corrected upward.
    `also_stopping`: other courses on record each switch discontinues too (regimens.family_stops).
    `switched_on`: the card that already starts an alternative (changing another draft, or switching
    another course): this draft is then removed, or this course stopped, not switched into a second
    course (a draft's card is one of its own: its key names the draft)."""
    conditions = facts.conditions
    if documented_resistant(conditions, t.drug):
        return None  # resistance is documented: the alternative-therapy card says what to switch to
    a = assess(facts, policy, t)
    if a is None:
        return None
    label = "Refractory CMV" if a.refractory else "Probable refractory CMV"
    # Never shown rounded onto the limit: a rise of 1.04 is refractory and reads 1.04, not the 1.0 of a probable one.
    trend = f"up {fmt(a.change, 1, beside=REFRACTORY_RISE_LOG10)} log10" if a.change > 0 else "not falling"
    into = (a.baseline.effective.date() - t.start).days
    start = f" (day {into} of the course: no PCR on its scale in the monitoring interval before it)" if into > 0 else ""
    blocks = [
        f"**Course:** {t.describe()} ({t.order.id}): {a.days} days at {facts.evaluated_at.date().isoformat()}.",
        f"**Viral load ({a.latest.scale}):** at the start {vl_dated(a.baseline)}{start}, latest {vl_dated(a.latest)}: "
        f"{a.change:+.2f} log10.",
        (
            "**Definition:** refractory = rise > 1 log10 after ≥ 2 weeks of appropriately dosed therapy; "
            "probable refractory = unchanged or rising < 1 log10 after ≥ 2 weeks. Resistance is confirmed by "
            f"genotype ({GENES_AND_DRUGS})."
        ),
    ]
    genes = TREATMENT_GENES
    if any(cmv_drug(m) == "letermovir" for m in facts.medications):
        genes += f"/{LETERMOVIR_GENES}"
        blocks.append(
            f"**Letermovir on record:** ask the laboratory to include {LETERMOVIR_GENES} (letermovir resistance)."
        )
    adequacy, under_dosed = _dose_adequacy(facts, policy, t)
    if adequacy:
        blocks.append(adequacy)
    if t.order.route == "oral" or t.drug in ("valganciclovir", "maribavir"):
        blocks.append("**Adherence:** oral therapy: check that doses were taken (and valganciclovir with food).")
    replaces = target.order.id if target is not None and target.order.is_draft else None
    running = running_on_record(t.order, facts)  # a course on record that can be stopped
    # Patient-view between doses (regimens.TherapyState.between_doses): no order to change or stop, only
    # the next dose to give, or not.
    between = not running and not replaces
    no_further = no_further_dose(t)
    genotype = LabOrderProposal(f"Order CMV resistance genotype ({genes})", "cmv-genotype", recommended=True, scope=genes)
    if under_dosed and ruled_out:
        # A higher dose of a drug ruled out is no correction: the critical card stops it.
        blocks.append(f"The course was under-dosed for the kidneys, but {ruled_out}: it is not to be continued at "
                      "any dose. Send the genotype; consult infectious diseases.")
        proposals: list[Proposal] = [genotype]
        summary = f"Viral load {trend} after {a.days} days of {t.drug} under-dosed for the kidneys: send the genotype"
        labels = (f"{t.drug}-label",)
        selection = "any"
    elif under_dosed and (not_corrected := _not_corrected(facts, t, switched_on)):
        # A correction another card's suggestion would undo, or be undone by: the genotype only (here unless a
        # switch card sends it).
        sent = switched_on is not None and _orders_test(switched_on, genotype.test)
        blocks.append(f"The course was under-dosed for the kidneys, but {not_corrected[1]}: no dose correction is "
                      "proposed here. Consult infectious diseases.")
        proposals = [] if sent else [genotype]
        summary = f"Viral load {trend} after {a.days} days of {t.drug} under-dosed for the kidneys: {not_corrected[0]}"
        labels = (f"{t.drug}-label",)
        selection = "any"
    elif under_dosed and switched_on is None:
        # Not refractory by definition: the dose is corrected first; a switch waits for the genotype.
        blocks.append(
            "Correct the dose first. If the viral load does not fall after 2 weeks at the label dose, send the "
            "genotype and consider a switch (resistance definitions). Consult infectious diseases."
        )
        if replaces and assess_dose(target.order, target.drug, facts, policy).matched:
            # The draft that continues the course already gives the label dose: it is the correction.
            blocks.append(f"This draft ({target.order.describe()}) gives the label dose: it is that correction.")
            proposals = [replace(genotype, recommended=False)]
            summary = f"Viral load {trend} after {a.days} days of {t.drug} under-dosed for the kidneys: this draft corrects it"
        elif between:
            blocks.append(f"Give the next dose at the label dose: {dose_words(under_dosed)}.")
            proposals = [replace(genotype, recommended=False)]
            summary = (f"Viral load {trend} after {a.days} days of {t.drug} under-dosed for the kidneys: next dose "
                       f"{fmt(under_dosed.dose_mg)} mg {under_dosed.schedule}")
        else:
            proposals = [
                # The course's own order is updated (the draft that continues it, else the order on record).
                regimen_proposal(as_ordered(under_dosed, target.order if replaces else t.order), verb="Correct to",
                                 recommended=True, replaces=replaces or t.order.id),
                replace(genotype, recommended=False),  # the correction comes first
            ]
            summary = (f"Viral load {trend} after {a.days} days of {t.drug} under-dosed for the kidneys: "
                       f"correct to {fmt(under_dosed.dose_mg)} mg {under_dosed.schedule}")
        labels = (f"{t.drug}-label",)
        selection = "any"  # the correction and the genotype are independent
    elif switched_on is not None:
        # Another card already starts the alternative (one course, not two): this draft is removed, or
        # this course on record stopped, and the genotype sent here unless that card sends it.
        sent = _orders_test(switched_on, genotype.test)
        if under_dosed:
            blocks.append("The course was under-dosed for the kidneys, but another card starts an alternative course: "
                          "no dose correction is proposed here.")
        blocks.append(f'**Alternative:** proposed on the card "{switched_on.summary}" (one alternative course, '
                      f"not two){', with the genotype' if sent else ''}. Consult infectious diseases.")
        if between:
            blocks.append(no_further)
            proposals = [] if sent else [genotype]
        else:
            removal, lines = stop_with_kin(target if replaces else t, "an alternative is proposed", also_stopping, switched_on)
            blocks += lines
            proposals = [removal] if sent else [genotype, removal]
        what = (f"remove this {target.drug} draft" if replaces else f"no further {t.drug} dose" if between
                else f"stop the {t.drug} order")
        if under_dosed:  # not refractory by definition: the label dose was never given
            summary = f"Viral load {trend} after {a.days} days of {t.drug} under-dosed for the kidneys: {what}"
            labels = (f"{t.drug}-label",)
        else:
            summary = f"{label}: viral load {trend} after {a.days} days of {t.drug}: {what}"
            labels = ()
        selection = "at-most-one" if sent else "any"  # the genotype and the stop are independent
    else:
        switch = switch_options(
            facts, policy, t.drug, phase="induction", title="Switch to", replaces=replaces, recommend=False,
            maribavir=True,  # refractory CMV after transplant is maribavir's indication
            # The course on record stops with the switch, also when a draft continuing it is what changes
            # (not an order that has ended: the draft is then the course's next dose).
            discontinues=((t.order.id,) if running else ()) + tuple(o.order.id for o in also_stopping),
        )
        # Not from foscarnet, nor to it when documented resistant or the label does not advise it (kidneys).
        to_foscarnet = switch.foscarnet is not None and not (
            isinstance(switch.foscarnet, RenalDose) and switch.foscarnet.not_recommended)
        blocks.append(
            # The brief says it of ganciclovir: not of a foscarnet, cidofovir or maribavir course.
            ("Ganciclovir resistance develops with extended use, especially in heavily immunosuppressed patients. "
             if t.drug in GANCICLOVIR_FAMILY else "")
            + ("Switch to foscarnet; combination therapy may be needed. " if to_foscarnet else "")
            + "Consult infectious diseases."
        )
        switches = sum(isinstance(p, DoseProposal) for p in switch.proposals)
        blocks += [*switch.blocks, *(family_stops(t.drug, also_stopping, "each switch offered here") if switches else ())]
        # One choice (at-most-one): the genotype alone, or the genotype with one switch; never two drugs.
        # A test a dose needs (creatinine) would be one more exclusive choice: left to the monitoring card.
        proposals = [genotype, *(_with_genotype(p, genotype) for p in switch.proposals
                                 if isinstance(p, DoseProposal) or not switches)]
        if switches > 1:
            blocks.append("Choose one switch: foscarnet or maribavir, not both.")
        selection = "at-most-one" if switches else "any"  # switches are alternatives, each with the genotype
        if switches and running:
            blocks.append(f"Stop the {t.drug} order ({t.order.id}) when its replacement starts: each switch offered "
                          "here discontinues it, and sends the genotype, as it orders.")
        elif switches and between:
            blocks.append(f"{no_further} Each switch offered here sends the genotype with it.")
        elif switches:
            blocks.append("Each switch offered here sends the genotype with it.")
        summary = f"{label}: viral load {trend} after {a.days} days of {t.drug}: send {TREATMENT_GENES} genotype"
        if to_foscarnet:
            summary += ", consider foscarnet"
        labels = switch.labels
        combination = "cns" in facts.conditions.cmv_disease_sites and t.drug == "ganciclovir" and "foscarnet" in switch.already
        if switch.already and running and not replaces and not combination:
            # Patient-view: the alternative is already ordered beside this course on record, which only stops
            # (as on the alternative-therapy card); maribavir and the ganciclovir family are not given together.
            # (On an order hook the draft continuing the course has the interaction card, and its renal card
            # may change it: a removal here would contradict that.  For CNS disease ganciclovir plus foscarnet
            # is the brief's combination: not stopped.)
            started = " and ".join(switch.already)
            removal, lines = stop_with_kin(t, f"{started} already ordered", also_stopping)
            proposals.append(removal)
            antagonism = "maribavir" in switch.already and t.drug in GANCICLOVIR_FAMILY
            blocks += [*lines, f"Stop the {t.drug} order now that {started} is ordered" + (
                ": maribavir is not given with ganciclovir or valganciclovir (antagonism; maribavir label)." if antagonism
                else " (unless the two are given together on purpose, with infectious diseases).")]
            summary = f"{label}: viral load {trend} after {a.days} days of {t.drug}, {started} ordered: stop the {t.drug} order"
            labels = (*labels, *(("maribavir-label",) if antagonism else ()))
    return Finding(
        topic="suspected-resistance",
        indicator="warning",
        summary=summary,
        detail="\n\n".join(blocks),
        sources=cite("resistance-definitions", "kotton-2025", "clinical-brief", *labels),
        proposals=tuple(proposals),
        selection=selection,
        override_reasons=("already-addressed", "specialist-directed", "patient-specific-regimen"),
        order_id=t.order.id,
        key=f"suspected-resistance|{t.order.id}" + (f"|{replaces}" if switched_on is not None and replaces else ""),
    )


def _with_genotype(proposal: Proposal, genotype: LabOrderProposal) -> Proposal:
    """A switch that also sends the genotype (one suggestion); anything else as it is."""
    if not isinstance(proposal, DoseProposal):
        return proposal
    label = "Send the genotype and " + proposal.label.removeprefix("Or ").replace("Switch", "switch", 1)
    return replace(proposal, label=label, also=(*proposal.also, replace(genotype, recommended=False)))


def _dose_adequacy(facts: ClinicalFacts, policy: Policy, t: TherapyOrder) -> tuple[str | None, RenalDose | None]:
    """Was the course dosed for the kidneys?  -> (the dose check in words, the label's band dose when
    the course was under-dosed: then under-dosing, not resistance, may explain the rise)."""
    if t.drug not in BANDED_DRUGS:
        return None, None
    a = assess_dose(t.order, t.drug, facts, policy)
    if a.unreadable:
        return "**Dose check:** " + "; ".join(a.unreadable) + ": confirm the course was adequately dosed.", None
    if a.cannot is not None:
        return f"**Dose check:** the label dose for the kidneys cannot be computed ({'; '.join(a.cannot.reasons)}).", None
    band = a.dose
    if a.matched:
        return f"**Dose check:** the ordered dose meets the label dose for {band.band} ({dose_words(band)}).", None
    if not usable(band):
        return f"**Dose check:** the label advises against {t.drug} for {band.band}: {band.not_recommended}.", None
    ordered = _per_week(t.order.dose_mg, t.order.interval_hours)
    label = band.dose_mg * band.doses_per_week if band.doses_per_week else None
    if ordered is not None and label is not None and ordered < label:
        return (
            f"**Under-dosed for the kidneys:** ordered {t.order.describe()} = {fmt(ordered)} mg/week; the label "
            f"dose for {band.band} is {dose_words(band)} = {fmt(label)} mg/week. Refractory CMV is defined on "
            "appropriately dosed therapy: correct the dose first."
        ), band
    return f"**Dose check:** the ordered dose differs from the label dose for {band.band} ({dose_words(band)}).", None


def _per_week(dose_mg: float | None, interval_hours: float | None) -> float | None:
    if dose_mg is None or not interval_hours:
        return None
    return dose_mg * 168.0 / interval_hours


def maribavir_indication(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, target: TherapyOrder
) -> Finding | None:
    """label-indication (warning): a maribavir draft with nothing on record that makes the CMV refractory
    (the label: refractory post-transplant CMV, with or without resistance): no documented resistance,
    and no course of another treatment drug of at least 2 weeks among the orders on record on which the
    viral load was not seen falling (a fall is a response: not refractory, resistance definitions)."""
    if target.drug != "maribavir":
        return None
    c = facts.conditions
    transplant = bool(c.populations & POST_TRANSPLANT)
    today = facts.evaluated_at.date()
    courses = [
        t for t in (*therapy.active, *therapy.ended)
        if t.kind == "treatment" and t.drug != "maribavir"
        and (t.days_on(min(t.order.end or today, today)) or 0) >= MIN_COURSE_DAYS  # days given, not planned
    ]
    # Refractory is defined on appropriately dosed therapy: a course under-dosed for the kidneys does not count.
    under_dosed = [t for t in courses if _dose_adequacy(facts, policy, t)[1] is not None]
    judged = [t for t in courses if t not in under_dosed]
    responses = [r for t in judged if (r := falling(facts, policy, t)) is not None]
    refractory = refractory_documented(c) or len(responses) < len(judged)
    if transplant and refractory:
        return None
    missing = [] if transplant else ["no solid-organ or stem-cell transplant on record"]
    if not refractory and under_dosed:
        missing.append("no documented resistance, and " + "; ".join(
            f"{t.describe()} was under-dosed for the kidneys" for t in under_dosed)
            + ": not appropriately dosed therapy, so not refractory CMV (correct the dose first)")
    if not refractory and responses:
        missing.append("no documented resistance, and the viral load fell on " + "; ".join(
            f"{r.therapy.drug} (day {r.days}: {vl_dated(r.baseline)} to {vl_dated(r.latest)}, {r.change:+.2f} log10)"
            for r in responses) + ": a response, not refractory CMV")
    elif not refractory and not under_dosed:
        missing.append(
            "no documented resistance, and no course of ganciclovir, valganciclovir, foscarnet or cidofovir of "
            f"at least 2 weeks among the orders on record (active, or ended in the last {RECENT_ORDER_DAYS} days)"
        )
    return Finding(
        topic="label-indication",
        indicator="warning",
        summary="Maribavir ordered without refractory post-transplant CMV on record: its label indication",
        detail="\n".join([
            f"**Ordered:** {target.order.describe()}",
            "**On record:** " + "; ".join(missing) + ".",
            "**Label:** maribavir is for post-transplant CMV that is refractory (with or without resistance) to "
            "treatment; refractory means the viral load rises, or does not fall, after at least 2 weeks of "
            "appropriately dosed therapy (resistance definitions). First line for CMV disease is IV ganciclovir, "
            "then oral valganciclovir (clinical brief). If the refractory course is not in this record, say so "
            "when overriding.",
        ]),
        sources=cite("maribavir-label", "resistance-definitions", "clinical-brief"),
        proposals=(infectious_diseases_consult("maribavir without a refractory course on record"),),
        override_reasons=("specialist-directed", "patient-specific-regimen", "already-addressed"),
        order_id=target.order.id,
        key=f"label-indication|{target.order.id}",
    )
