"""Drug interactions of the anti-CMV agents: exactly the pairs the labels name (reference sections 3, 5, 8).

A rule pairs anti-CMV agents with partner groups (clinical/drugs.py).  A target anti-CMV order is
checked against every partner on record or drafted; a non-CMV target (imipenem drafted while on
ganciclovir, cyclosporine with letermovir) gets the same finding, unless the anti-CMV order is itself
a target, whose own check reports it.

Indicators follow the labels' wording:
- maribavir with ganciclovir/valganciclovir: antagonism, not recommended (US) / contraindicated
  (EU): warning with a stop proposal (critical is kept for the US label's "do not give").
- ganciclovir/valganciclovir with other marrow-toxic drugs: info.  The label describes additive
  toxicity to monitor, not a combination to avoid, and mycophenolate is on nearly every transplant
  recipient's list: a warning on each order would be noise.  Actual cytopenias are the
  hematologic-toxicity finding's job; when it has an info card for low counts, that card names the
  marrow-toxic co-medication and this one is not given (`said`): both advise the same weekly count.
- ganciclovir/valganciclovir with imipenem-cilastatin: seizures, warning.
- ganciclovir/valganciclovir with probenecid: higher ganciclovir exposure, info.  The label names
  ganciclovir; valganciclovir is converted to ganciclovir, so it counts too.  Cidofovir's own
  probenecid is not an interaction.
- letermovir with cyclosporine: letermovir 240 mg once daily, warning with the dose (silent when the
  order already is 240 mg); it says to monitor cyclosporine's levels, so the levels card below names only
  the others (sirolimus, tacrolimus).
- letermovir/maribavir raising calcineurin/mTOR inhibitor levels: info, monitor levels.
- letermovir lowering voriconazole levels: info, watch its effect.
- maribavir with inducers: label dose (carbamazepine 800 mg, phenytoin/phenobarbital 1200 mg twice
  daily) or not recommended (rifampin, rifabutin, St John's wort): warning.
"""

from __future__ import annotations


from cds_service.clinical.dose_tables import FIXED_DOSE_DRUGS
from cds_service.clinical.drugs import (
    SHOWN_ORDERS,
    all_groups,
    cmv_drug,
    describe_order,
    display_name,
    groups_of,
    list_orders,
    other_orders,
)
from cds_service.clinical.findings import Finding, Indicator, StopOrderProposal
from cds_service.clinical.inputs import fmt
from cds_service.clinical.renal_dosing import RenalDose, out_of_scope, renal_dose
from cds_service.clinical.sources import cite
from cds_service.clinical.therapy import band_proposal
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.frozen import frozen
from cds_service.policy import Policy


@frozen
class InteractionRule:
    key: str
    agents: tuple[str, ...]  # anti-CMV agents
    partners: tuple[str, ...]  # groups of clinical/drugs.py
    indicator: Indicator
    effect: str  # the label's words
    action: str  # what to do
    short: str  # the effect in a summary (dose rules say the dose instead)
    sources: tuple[str, ...]
    kind: str = "monitor"  # "monitor", "stop" (propose removing the draft) or "dose" (label dose)
    # Rules this one replaces for the same pair when it fires (the dose warning includes the levels).
    supersedes: tuple[str, ...] = ()


CNI_LETERMOVIR = ("tacrolimus", "cyclosporine", "sirolimus")
CNI_MARIBAVIR = ("tacrolimus", "cyclosporine", "sirolimus", "everolimus")
MARROW_TOXIC = ("mycophenolate", "zidovudine", "trimethoprim-sulfamethoxazole", "dapsone", "pentamidine", "flucytosine")
MARROW_TOXICITY = "marrow-toxicity"  # the rule's key

RULES = (
    InteractionRule(
        "maribavir-antagonism",
        ("maribavir",),
        ("ganciclovir", "valganciclovir"),
        "warning",
        "maribavir may antagonise the antiviral effect of ganciclovir and valganciclovir: co-administration is "
        "not recommended (US label) and contraindicated (EU label)",
        "Do not give them together: keep one.",
        "antagonism, co-administration not recommended",
        ("maribavir-label",),
        kind="stop",
    ),
    InteractionRule(
        MARROW_TOXICITY,
        ("ganciclovir", "valganciclovir"),
        MARROW_TOXIC,
        "info",
        "additive bone-marrow toxicity (label)",
        "Check the blood count (ANC, platelets, hemoglobin) at least weekly while both are given.",
        "additive marrow toxicity, monitor blood counts",
        ("ganciclovir-label", "valganciclovir-label"),
    ),
    InteractionRule(
        "imipenem-seizures",
        ("ganciclovir", "valganciclovir"),
        ("imipenem",),
        "warning",
        "seizures have been reported with ganciclovir and imipenem-cilastatin (label)",
        "Avoid the combination unless the benefit outweighs the risk; consider another antibiotic.",
        "seizures reported, avoid unless benefit outweighs risk",
        ("ganciclovir-label", "valganciclovir-label"),
    ),
    InteractionRule(
        "probenecid-ganciclovir-exposure",
        ("ganciclovir", "valganciclovir"),
        ("probenecid",),
        "info",
        "probenecid raises ganciclovir exposure (ganciclovir label); valganciclovir is converted to "
        "ganciclovir, so this applies to it too",
        "Watch for ganciclovir toxicity: blood counts and creatinine.",
        "raises ganciclovir exposure, watch for toxicity",
        ("ganciclovir-label",),
    ),
    InteractionRule(
        "letermovir-cyclosporine-dose",
        ("letermovir",),
        ("cyclosporine",),
        "warning",
        "with cyclosporine the letermovir dose is 240 mg once daily (label); letermovir also raises "
        "cyclosporine levels",
        "Give letermovir 240 mg once daily and monitor cyclosporine levels.",
        "letermovir 240 mg once daily",
        ("letermovir-label",),
        kind="dose",
        supersedes=("letermovir-immunosuppressant-levels",),
    ),
    InteractionRule(
        "letermovir-immunosuppressant-levels",
        ("letermovir",),
        CNI_LETERMOVIR,
        "info",
        "letermovir raises tacrolimus, cyclosporine and sirolimus levels (label)",
        "Monitor immunosuppressant levels when letermovir starts, changes or stops.",
        "raises levels, monitor them",
        ("letermovir-label",),
    ),
    InteractionRule(
        "letermovir-voriconazole-levels",
        ("letermovir",),
        ("voriconazole",),
        "info",
        "letermovir lowers voriconazole levels (label)",
        "Watch for reduced voriconazole effect (levels where available) when letermovir starts, changes or stops.",
        "lowers voriconazole levels, watch its effect",
        ("letermovir-label",),
    ),
    InteractionRule(
        "maribavir-inducer-dose",
        ("maribavir",),
        ("carbamazepine", "phenytoin", "phenobarbital", "rifampin", "rifabutin", "st-johns-wort"),
        "warning",
        "inducers lower maribavir levels (label): with carbamazepine give 800 mg twice daily, with phenytoin "
        "or phenobarbital 1200 mg twice daily; rifampin, rifabutin and St John's wort are not recommended",
        "Use the label's maribavir dose for the inducer, or avoid the inducer.",
        "lower maribavir levels",
        ("maribavir-label",),
        kind="dose",
    ),
    InteractionRule(
        "maribavir-immunosuppressant-levels",
        ("maribavir",),
        CNI_MARIBAVIR,
        "info",
        "maribavir raises tacrolimus, cyclosporine, sirolimus and everolimus levels (label)",
        "Monitor immunosuppressant levels when maribavir starts, changes or stops.",
        "raises levels, monitor them",
        ("maribavir-label",),
    ),
)


def interaction_findings(
    order: MedicationOrder,
    facts: ClinicalFacts,
    policy: Policy,
    target_ids: frozenset[str],
    said: frozenset[str] = frozenset(),
    ruled_out: frozenset[str] = frozenset(),
) -> list[Finding]:
    """The label interactions of one target order with the other orders (see the module docstring).
    `said`: keys of rules another card of this target already words (not given again as the agent).
    `ruled_out`: drugs not to be given at all (the ganciclovir family, with counts below the label): of
    a pair to split, only their side is offered to stop."""
    drug = cmv_drug(order)
    others = other_orders(facts, order)
    # (rule, anti-CMV order) -> partner orders
    pairs: dict[tuple[InteractionRule, str], tuple[MedicationOrder, list[MedicationOrder]]] = {}
    as_agent = [r for r in RULES if drug in r.agents and r.key not in said]
    as_partner = [r for r in RULES if not all_groups(order).isdisjoint(r.partners)]
    for other in others if as_agent or as_partner else ():
        other_drug = cmv_drug(other)
        if other_drug is not None and other_drug == drug:
            continue
        theirs = all_groups(other)
        for rule in as_agent:
            if not theirs.isdisjoint(rule.partners):
                pairs.setdefault((rule, order.id), (order, []))[1].append(other)
        for rule in as_partner:
            if other_drug in rule.agents and other.id not in target_ids:
                pairs.setdefault((rule, other.id), (other, []))[1].append(order)
    findings = {key: _finding(key[0], order, agent, partners, facts, policy, ruled_out)
                for key, (agent, partners) in pairs.items()}
    # A card that supersedes another (letermovir's cyclosporine dose, which says to monitor its levels) takes the
    # partners it names from that one, whose card stays for the rest (sirolimus, tacrolimus).
    covered: dict[tuple[str, str], set[str]] = {}
    for (rule, agent_id), finding in findings.items():
        if finding is not None:
            for key in rule.supersedes:
                covered.setdefault((key, agent_id), set()).update(p.id for p in pairs[rule, agent_id][1])
    results = []
    for (rule, agent_id), finding in findings.items():
        taken = covered.get((rule.key, agent_id))
        if taken:
            agent, partners = pairs[rule, agent_id]
            rest = [p for p in partners if p.id not in taken]
            finding = _finding(rule, order, agent, rest, facts, policy, ruled_out) if rest else None
        if finding is not None:
            results.append(finding)
    return results


def acted_pairs(order: MedicationOrder, facts: ClinicalFacts, policy: Policy) -> list[Finding]:
    """The pairs with `order` as their agent that the label acts on: not to be given together (rules of kind
    "stop", maribavir with the ganciclovir family or rifampin; each card offering to stop either side), or
    another dose (kind "dose": letermovir with cyclosporine, 240 mg; maribavir with an inducer), one card naming
    every partner: for orders on record, which patient-view checks as the order hooks did for a draft (an order
    already at the pair's dose gets none)."""
    rules = [rule for rule in RULES if rule.kind in ("stop", "dose") and cmv_drug(order) in rule.agents]
    keys = {_key(rule, order.id) for rule in rules}
    return [f for f in interaction_findings(order, facts, policy, frozenset()) if f.key in keys] if rules else []


def marrow_toxic_orders(order: MedicationOrder, facts: ClinicalFacts) -> tuple[MedicationOrder, ...]:
    """The other orders the marrow-toxicity rule pairs with a ganciclovir or valganciclovir order."""
    return tuple(o for o in other_orders(facts, order) if groups_of(o, MARROW_TOXIC))


def _key(rule: InteractionRule, agent_id: str) -> str:
    return f"drug-interaction|{rule.key}|{agent_id}"


def _finding(
    rule: InteractionRule,
    target: MedicationOrder,
    agent: MedicationOrder,
    partners: list[MedicationOrder],
    facts: ClinicalFacts,
    policy: Policy,
    ruled_out: frozenset[str] = frozenset(),
) -> Finding | None:
    agent_drug = cmv_drug(agent)
    names = sorted({display_name(g) for p in partners for g in groups_of(p, rule.partners)})
    lines = [
        f"**{agent_drug.capitalize()} order:** {describe_order(agent)}",
        "**With:** " + list_orders(partners),
        f"**Label:** {rule.effect}.",
        rule.action,
    ]
    proposals: list = []
    short = rule.short
    if rule.kind == "dose":
        rd = renal_dose(agent_drug, "induction", facts, policy)  # fixed dose, adjusted for co-medication
        if not isinstance(rd, RenalDose):
            # A child: the label's words are said without its adult doses.  A partner the label does not recommend
            # with the drug at all, whatever the dose (maribavir with rifampin), is still not to be given.
            child = out_of_scope(facts) is not None
            ruled_out_partners = [a for a in FIXED_DOSE_DRUGS[agent_drug].adjustments
                                  if child and a.dose is None and any(groups_of(p, (a.group,)) for p in partners)]
            if ruled_out_partners:
                shown = ", ".join(display_name(a.group) for a in ruled_out_partners)
                lines[2:4] = [f"**Label:** {agent_drug} with {shown}: not recommended (label)."]
                short = f"not recommended with {shown}"
                proposals += _stop_either(target, agent, partners, f"{agent_drug} interaction")
            else:
                if child:
                    lines[2:4] = [f"**Label:** with {', '.join(names)} the label changes the {agent_drug} dose; its "
                                  "doses are for adults and are not given here for this patient."]
                    short = "the label changes its dose (adult doses not given here)"
                lines.append("The label dose cannot be shown: " + "; ".join(rd.reasons) + ".")
        elif rd.not_recommended:
            short = rd.not_recommended.split(":")[0]
            lines.append(f"**{agent_drug.capitalize()} is {rd.not_recommended}.**")
            proposals += _stop_either(target, agent, partners, f"{agent_drug} interaction")
        else:
            standard = FIXED_DOSE_DRUGS[agent_drug].standard
            if _is_dose(agent, rd.dose_mg, rd.interval_hours):
                return None  # already the label's adjusted dose
            ordered = "dose unreadable" if agent.dose_mg is None else f"{fmt(agent.dose_mg)} mg"
            lines.append(
                f"**Label dose {rd.band.removesuffix(' (label)')}:** {fmt(rd.dose_mg)} mg {rd.schedule} (standard dose "
                f"{fmt(standard.mg)} mg {standard.schedule}). Ordered: {ordered}."
            )
            short = f"label dose {fmt(rd.dose_mg)} mg {rd.schedule}"
            label = f"Change {agent_drug} to {fmt(rd.dose_mg)} mg {rd.schedule}"
            proposals.append(band_proposal(label, rd, agent, replaces=agent.id, recommended=True))
    elif rule.kind == "stop":
        proposals += _stop_either(target, agent, partners, "antagonism with {other}", ruled_out)
        if len({cmv_drug(o) in ruled_out for o in (target, agent, *partners)}) == 2:  # one side ruled out
            lines.append("The blood counts are below the ganciclovir label's limits: stop the ganciclovir-family "
                         "order, not the other (see the blood-count card).")
    summary = f"{agent_drug.capitalize()} with {', '.join(names)}: {short}"
    return Finding(
        topic="drug-interaction",
        indicator=rule.indicator,
        summary=summary if len(summary) < 140 else f"{agent_drug.capitalize()} with {', '.join(names)}: label interaction",
        detail="\n".join(lines),
        sources=cite(*rule.sources),
        proposals=tuple(proposals),
        override_reasons=("interaction-managed", "benefit-outweighs-risk", "monitoring-arranged", "already-addressed"),
        order_id=target.id,
        key=_key(rule, agent.id) + ("" if target.id == agent.id else f"|{target.id}"),
    )


def _is_dose(order: MedicationOrder, mg: float, interval: float | None) -> bool:
    return (
        order.dose_mg is not None
        and abs(order.dose_mg - mg) < 1e-6
        and order.interval_hours is not None
        and interval is not None
        and abs(order.interval_hours - interval) <= 0.05 * interval
    )


def _stop_either(
    target: MedicationOrder, agent: MedicationOrder, partners: list[MedicationOrder], reason: str,
    ruled_out: frozenset[str] = frozenset(),
) -> list:
    """Stop proposals (alternatives: the clinician keeps one side) for the orders of the pair, the target
    first: a draft is removed, an order on record discontinued (maribavir started for refractory CMV
    while valganciclovir is on record: stopping the valganciclovir is the switch).  `reason` may name
    {other}: the other side of the pair, as seen from the order stopped.  Orders of a `ruled_out` drug,
    when the pair has some: only those (stopping the other side would leave neither to give)."""
    def name(o: MedicationOrder) -> str:
        return cmv_drug(o) or o.ingredient or o.drug_text or "this"

    orders = (target, agent, *partners[:SHOWN_ORDERS])
    orders = tuple(o for o in orders if cmv_drug(o) in ruled_out) or orders
    proposals: list = []
    for o in orders:
        if o.id not in [p.order_id for p in proposals]:
            other = name(agent) if o is not agent else ", ".join(dict.fromkeys(name(p) for p in partners))
            verb = "Remove" if o.is_draft else "Discontinue"
            proposals.append(StopOrderProposal(f"{verb} the {name(o)} order", o.id, reason.format(other=other)))
    return proposals
