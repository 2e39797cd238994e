"""Order safety for order-select and order-sign: is each target order safe for this patient?

`targets` are the drafts to check (order-select: the selected ones; order-sign: all; patient-view:
none).  Each target is checked against the whole record (facts.medications) and all drafts.

- An anti-CMV target gets every check that applies to its drug (check_order); checks that lack an
  input leave a Gap, and an order's gaps become one missing-data finding.
- A non-CMV target is quiet, except where it interacts with an anti-CMV order that is not itself a
  target (imipenem drafted while on ganciclovir, cyclosporine with letermovir, a nephrotoxin with
  foscarnet or cidofovir): the clinician drafting it is the one who can act.
- A draft with no medication (the sandbox's page load) gets nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping

from cds_service.clinical.drugs import (
    COMPANION_REASON,
    GANCICLOVIR_FAMILY,
    cmv_drug,
    describe_order,
    drafted_with,
    list_orders,
    order_identity,
)
from cds_service.clinical.findings import (
    DoseProposal,
    Finding,
    StopOrderProposal,
    carried_stops,
    order_acted_on,
    starting,
    urgency,
)
from cds_service.clinical.inputs import clip
from cds_service.clinical.interactions import MARROW_TOXICITY, interaction_findings, marrow_toxic_orders
from cds_service.clinical.missing_data import Gap, missing_data_finding, not_retrieved, resulting_items, retrieved
from cds_service.clinical.regimens import therapy_state
from cds_service.clinical.renal_dosing import RenalDose, cidofovir_preparation, renal_dose
from cds_service.clinical.therapy import (
    BANDED_DRUGS,
    assess_dose,
    duplicate_findings,
    enteral,
    infusion_time_finding,
    label_dose_finding,
    oral_ganciclovir_finding,
    phase_by_interval,
    renal_dose_finding,
    route_finding,
    tablets_through_tube_finding,
)
from cds_service.clinical.toxicity import (
    Elsewhere,
    cidofovir_nephrotoxicity,
    cidofovir_neutropenia,
    counts_below_the_label,
    creatinine_rise,
    electrolytes,
    foscarnet_nephrotoxicity,
    hematologic,
    nephrotoxin_with_cmv_drug,
    reduced_dose_due,
)
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.policy import Policy

DOSE_TOPICS = frozenset({"renal-dose-adjustment", "label-dose", "infusion-time"})


def check_orders(
    facts: ClinicalFacts, policy: Policy, targets: Iterable[MedicationOrder], advice: Iterable[Finding] = ()
) -> list[Finding]:
    """Order safety for the targets.  `advice`: the same call's guidance findings.  Every suggestion
    can be accepted with every other one: one card starts foscarnet (a critical count card names a
    card that already does, or that changes its draft: toxicity.Elsewhere), and no card removes or
    re-doses a draft another card changes into another drug (accepted after the change, it would undo
    it: _sparing_drafts)."""
    # Identical drafts get identical advice: the first of them is checked, and its duplicate-therapy
    # finding lists the others (2,000 copies of one draft are one set of cards, in linear time).
    targets = tuple(targets)
    first: dict[tuple, MedicationOrder] = {}
    for target in targets:
        first.setdefault(order_identity(target), target)
    checked_ids = frozenset(t.id for t in first.values())
    target_ids = frozenset(t.id for t in targets)  # a copy of a checked draft has its pairs said by that draft
    advice = tuple(advice)
    switched_by_advice = _changed_drafts(targets, advice)
    foscarnet = starting(advice, "foscarnet")
    # Drugs the counts rule out (not to be given at all), for the pairs the checks split: read once.
    ruled_out = GANCICLOVIR_FAMILY if counts_below_the_label(facts, policy) else frozenset()
    # Valganciclovir tablets the kidneys rule out (below CrCl 10, on dialysis): no step-down to them from
    # ganciclovir.  Read only where both are ordered (the step-down card's pair), not on every call.
    pair = any(cmv_drug(t) in GANCICLOVIR_FAMILY for t in first.values()) and GANCICLOVIR_FAMILY <= {
        cmv_drug(o) for o in (*facts.active_medications, *facts.drafts)}
    tablets = renal_dose("valganciclovir", "induction", facts, policy) if pair else None
    no_tablets = isinstance(tablets, RenalDose) and bool(tablets.not_recommended)
    not_advised = frozenset({"valganciclovir"}) if no_tablets else frozenset()
    prophylaxis = _prophylaxis(facts, policy, advice)
    findings: list[Finding] = []
    for order in first.values():
        replacing = switched_by_advice.get(order.id)
        found = check_order(order, facts, policy, checked_ids, target_ids, ruled_out,
                            Elsewhere.of(replacing[1] if replacing else None, foscarnet), not_advised, prophylaxis)
        foscarnet = foscarnet or starting((f for f in found if f.topic == "hematologic-toxicity"), "foscarnet")
        findings += found
    findings = _sparing_drafts(findings, {**_changed_drafts(targets, findings), **switched_by_advice},
                               _removed_by_advice(targets, advice), frozenset(d.id for d in facts.drafts))
    unique = {f.dedup_key(): f for f in reversed(findings)}  # first occurrence wins
    ordered = [unique[k] for k in dict.fromkeys(f.dedup_key() for f in findings)]
    # Summaries name drugs as ordered, so their length is not fixed: keep them under 140 here.
    clipped = [f if len(f.summary) < 140 else replace(f, summary=clip(f.summary)) for f in ordered]
    return sorted(clipped, key=urgency)


Changed = Mapping[str, tuple[MedicationOrder, Finding]]  # draft id -> (the draft, a card changing it)


def _changed_drafts(drafts: Iterable[MedicationOrder], findings: Iterable[Finding]) -> Changed:
    """The drafts one of `findings` changes into another drug (the first such finding for each)."""
    by_id = {d.id: d for d in drafts}
    changed: dict[str, tuple[MedicationOrder, Finding]] = {}
    for f in findings:
        for p in f.proposals:
            d = by_id.get(p.replaces) if isinstance(p, DoseProposal) and p.replaces else None
            if d is not None and p.drug != cmv_drug(d):
                changed.setdefault(d.id, (d, f))
    return changed


def _sparing_drafts(
    findings: list[Finding], changed: Changed, removed: Changed, drafts: frozenset[str]
) -> list[Finding]:
    """Each finding without its suggestions to remove or re-dose a draft another finding changes into
    another drug (`changed`: accepted after the change, either would undo it), nor to remove a draft the
    prophylaxis-not-treatment card removes (`removed`: one removal, not one per card; but never a
    recommended removal for one that is not), saying so.  What a removal stopped with the draft stays as
    a suggestion of its own where it is an order on record; a draft, such as the probenecid drafted with
    cidofovir, goes with the change instead (with_drafted_companions).  A card whose suggestions were all
    such removals is dropped (the other card answers it), unless it is critical; a dose card keeps its
    words, since the dose still applies if the change is not accepted (unless the card also lost a
    removal to the prophylaxis card)."""
    kept = []
    for f in findings:
        proposals: list = []
        gone: dict[str, tuple[MedicationOrder, Finding, str]] = {}  # draft id -> (draft, card, "changed"/"removed")
        redosed: dict[str, tuple[MedicationOrder, Finding]] = {}
        for p in f.proposals:
            target = order_acted_on(p)
            if target in changed and changed[target][1] is not f:
                if isinstance(p, StopOrderProposal):
                    gone[target] = (*changed[target], "changed")
                    proposals += [a for a in p.also if a.order_id not in drafts]
                else:
                    redosed[target] = changed[target]
            elif isinstance(p, StopOrderProposal) and target in removed and (
                    not p.recommended or _recommends_removal(removed[target][1], target)):
                gone[target] = (*removed[target], "removed")
                proposals += [a for a in p.also if a.order_id not in drafts]
            else:
                proposals.append(p)
        if not gone and not redosed:
            kept.append(f)
            continue
        lost_to_prophylaxis = any(how == "removed" for *_, how in gone.values())
        if not proposals and (not redosed or lost_to_prophylaxis) and f.indicator != "critical":
            continue
        notes = [f'**{describe_order(d)}** is changed on the card "{card.summary}": not removed here.'
                 for d, card, how in gone.values() if how == "changed"]
        notes += [f'**{describe_order(d)}** is changed on the card "{card.summary}": its dose is not changed here '
                  "(if that change is not accepted, the dose above applies)." for d, card in redosed.values()]
        notes += [f'**{describe_order(d)}** is removed on the card "{card.summary}": not removed here.'
                  for d, card, how in gone.values() if how == "removed"]
        kept.append(replace(f, proposals=tuple(proposals), detail="\n\n".join([f.detail, *notes])))
    return kept


def _removed_by_advice(drafts: Iterable[MedicationOrder], advice: Iterable[Finding]) -> Changed:
    """The drafts the prophylaxis-not-treatment card removes (prophylaxis drafted while CMV needs
    treatment): that card's reason, prophylaxis is not treatment, is the one that fits their removal."""
    by_id = {d.id: d for d in drafts}
    return {p.order_id: (by_id[p.order_id], f) for f in advice if f.topic == "prophylaxis-not-treatment"
            for p in f.proposals if isinstance(p, StopOrderProposal) and p.order_id in by_id}


def _recommends_removal(card: Finding, order_id: str) -> bool:
    return any(isinstance(p, StopOrderProposal) and p.order_id == order_id and p.recommended for p in card.proposals)


def with_drafted_companions(findings: list[Finding], facts: ClinicalFacts) -> list[Finding]:
    """Every suggestion that removes a draft, or changes it into another drug, also removes the drafts
    that stand or fall with it (drugs.drafted_with: a cidofovir draft's probenecid), saying so: accepted
    alone, it must not leave them to be signed."""
    cidofovir = {d.id: d for d in facts.drafts if cmv_drug(d) == "cidofovir"}
    if not cidofovir:
        return findings
    result = []
    for f in findings:
        proposals, went = [], {}
        for p in f.proposals:
            draft = order_acted_on(p)  # removed, or changed into another drug (a cidofovir dose keeps it)
            have = {s.order_id for s in getattr(p, "also", ()) if isinstance(s, StopOrderProposal)}
            kept = isinstance(p, DoseProposal) and p.drug == "cidofovir"
            companions = drafted_with(cidofovir[draft], facts, leaving=have) if draft in cidofovir and not kept else ()
            extra = tuple(c for c in companions if c.id not in have)
            if extra:
                went |= {c.id: c for c in extra}
                p = replace(p, also=(*p.also, *carried_stops((c.id for c in extra), COMPANION_REASON, "Remove")))
            proposals.append(p)
        result.append(replace(f, proposals=tuple(proposals), detail=f"{f.detail}\n\n**{list_orders(went.values())}**: "
                              f"{COMPANION_REASON}, so each suggestion that removes or changes the cidofovir draft "
                              "removes it too.") if went else f)
    return result


def check_order(
    order: MedicationOrder, facts: ClinicalFacts, policy: Policy, checked_ids: frozenset[str],
    target_ids: frozenset[str], ruled_out: frozenset[str] = frozenset(), elsewhere: Elsewhere | None = None,
    not_advised: frozenset[str] = frozenset(), prophylaxis: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Every check for one target.  `checked_ids`: the targets checked in this call (a pair of them is
    said once); `target_ids`: all of them; `ruled_out`: drugs the counts rule out; `elsewhere`: the card
    that already replaces this order or starts foscarnet, for the critical count card; `not_advised`:
    drugs the kidneys rule out as ordered (no step-down to them); `prophylaxis`: the ganciclovir-family orders
    given as prophylaxis beside letermovir (_prophylaxis)."""
    drug = cmv_drug(order)
    if drug is None:
        if order.ingredient is None and not order.drug_text:
            return []  # no medication chosen yet
        return [*interaction_findings(order, facts, policy, target_ids), *nephrotoxin_with_cmv_drug(order, facts, target_ids)]

    results: list[Finding | Gap | None] = []
    # ganciclovir's renal table is for IV use; oral ganciclovir (rare, not valganciclovir) is not banded
    banded = drug in BANDED_DRUGS and not (drug == "ganciclovir" and enteral(order))
    phase, how = None, ""
    # Cidofovir's creatinine rise since its course began: read once, for its dose and its nephrotoxicity.
    rise = creatinine_rise(order, facts, policy) if drug == "cidofovir" else None
    if banded:
        assessment = assess_dose(order, drug, facts, policy)
        results += assessment.gaps
        # A route the label forbids is critical, so the renal-dose card gives way (below); the route card
        # carries the IV band dose.  Cidofovir after a creatinine rise of 0.3-0.4 mg/dL: the
        # nephrotoxicity card gives its 3 mg/kg.
        results.append(route_finding(order, assessment))
        if not reduced_dose_due(rise):
            results.append(renal_dose_finding(order, assessment, facts, policy))
        phase, how = assessment.phase, assessment.how
    results.append(tablets_through_tube_finding(order, drug) or oral_ganciclovir_finding(order, drug))
    said: frozenset[str] = frozenset()  # interaction rules another card of this order words
    if drug in GANCICLOVIR_FAMILY:
        if phase is None:  # oral ganciclovir: no band to match, so the interval tells the phase
            phase, _ = phase_by_interval(drug, order, facts)
            how = f"assumed {phase} from the interval"
        marrow_toxic = marrow_toxic_orders(order, facts)
        counts = hematologic(order, drug, phase, how, facts, policy, marrow_toxic, elsewhere)
        if marrow_toxic and any(isinstance(c, Finding) and c.indicator == "info" for c in counts):
            said = frozenset({MARROW_TOXICITY})  # the low-count card names the co-medication: one card, not two
        results += counts
    if drug == "foscarnet":
        results.append(infusion_time_finding(order, facts, policy))
        results += foscarnet_nephrotoxicity(order, facts)
        results += electrolytes(order, facts, policy)
    if drug == "cidofovir":
        results += cidofovir_nephrotoxicity(order, facts, policy, rise)
        results += cidofovir_neutropenia(order, facts, policy)
    results.append(label_dose_finding(order, drug, facts, policy))
    results += interaction_findings(order, facts, policy, target_ids, said, ruled_out)
    if not retrieved(facts, "medications"):
        # An absence proves nothing: the co-medications and other courses the checks above read are unknown.
        results.append(Gap("interactions and duplicate therapy",
                           ("medication orders on record could not be retrieved: co-medications and other courses unknown",),
                           ("medications",)))
    # Doses of its drug other cards propose for this draft: one equal to the order on record makes it a copy
    # of it, another a dose change.
    proposed = frozenset(
        (p.dose_mg, p.interval_hours) for r in results if isinstance(r, Finding)
        for p in r.proposals if isinstance(p, DoseProposal) and p.replaces == order.id and p.drug == drug
    )
    findings = [r for r in results if isinstance(r, Finding)]
    # The kidneys rule the drug out (its critical card stops its orders on record too): no duplicate of it.
    kidneys = frozenset({drug}) if any(f.topic == "nephrotoxicity" and f.indicator == "critical" for f in findings) else frozenset()
    findings += duplicate_findings(order, drug, facts, checked_ids, proposed, ruled_out | kidneys, not_advised, prophylaxis)
    do_not_give = any(f.indicator == "critical" and f.order_id == order.id for f in findings)
    if do_not_give:
        # The label says do not give: a card correcting the dose or its infusion would contradict it,
        # and so would one changing the order to a drug the counts rule out (IV ganciclovir for tablets).
        findings = [f for f in findings if f.order_id != order.id or not (
            f.topic in DOSE_TOPICS or any(isinstance(p, DoseProposal) and p.drug in ruled_out for p in f.proposals))]
    # How to give it is no advice on an order the label says not to give (its critical card).
    extra = f"Cidofovir, if given: {cidofovir_preparation(facts)}" if drug == "cidofovir" and not do_not_give else ""
    gaps = [r for r in results if isinstance(r, Gap)]
    missing = missing_data_finding(order, drug, gaps, extra, not_retrieved(facts),
                                   resulting_items(facts, policy) if gaps else frozenset())
    return findings + ([missing] if missing else [])


def _prophylaxis(facts: ClinicalFacts, policy: Policy, advice: tuple[Finding, ...]) -> frozenset[str]:
    """The ganciclovir-family orders (on record or drafted) given as prophylaxis, by id, where letermovir is
    ordered or active: beside it, two prophylaxis agents.  None where treatment is given or drafted (letermovir
    then adds nothing to the treatment, which its duplicate card says), nor where the guidance says a draft is
    prophylaxis where treatment is needed (its card proposes the treatment)."""
    if not any(cmv_drug(o) == "letermovir" for o in (*facts.active_medications, *facts.drafts)) or any(
            f.topic == "prophylaxis-not-treatment" for f in advice):
        return frozenset()
    therapy = therapy_state(facts, policy)
    if therapy.in_course or any(t.kind != "prophylaxis" for t in therapy.drafts):
        return frozenset()
    return frozenset(t.order.id for t in (*therapy.active, *therapy.drafts)
                     if t.kind == "prophylaxis" and t.drug in GANCICLOVIR_FAMILY)
