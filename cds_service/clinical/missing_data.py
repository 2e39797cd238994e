"""Checks that could not be done, and the one missing-data finding per order that says so.

Each check that lacks an input returns a `Gap` instead of a guess; the orchestrator gathers an
order's gaps into a single warning listing everything (deduplicated), with lab orders for what can
be measured.  No dose is ever suggested from incomplete data.
"""

from __future__ import annotations


from cds_service.clinical.findings import Finding, LabOrderProposal
from cds_service.clinical.inputs import fitting, resulting
from cds_service.clinical.sources import cite
from cds_service.facts import RECORD_PARTS
from cds_service.facts.model import ClinicalFacts, MedicationOrder
from cds_service.frozen import frozen
from cds_service.policy import Policy

# What to order or record, per missing item: (words, test key of the cards layer or None).
ITEMS = {
    "creatinine": ("serum creatinine", "creatinine"),
    "weight": ("weight", "weight"),
    "height": ("height", "height"),
    "age": ("age (birth date)", None),
    "sex": ("sex", None),
    "crcl_reported": ("reported creatinine clearance", None),
    "cbc": ("blood count (ANC, platelets, hemoglobin)", "cbc"),
    "urine-protein": ("urine protein", "urine-protein"),
    "order": ("a readable dose and interval", None),
}
# The results each orderable item stands for, and the policy's staleness window for them: one whose newest result
# is a current preliminary one is a test already resulting, not one to order again.
RESULTS_OF = {"creatinine": (("creatinine",), "creatinine_max_age_days"),
              "cbc": (("anc", "platelets", "hemoglobin"), "blood_count_max_age_days"),
              "urine-protein": (("urine_protein", "urine_protein_dipstick"), "urine_protein_max_age_days")}


def resulting_items(facts: ClinicalFacts, policy: Policy) -> frozenset[str]:
    """The orderable items with a test resulting (inputs.resulting)."""
    return frozenset(item for item, (analytes, max_age) in RESULTS_OF.items()
                     if any(resulting(facts, a, getattr(policy, max_age)) for a in analytes))


# Items that are nothing missing (dialysis on record beside a higher clearance, a child): what they are instead,
# in a summary.
NOT_MISSING = {"dialysis": "confirm whether the patient is on dialysis", "adult": "adult dose bands do not apply"}
# Parts of the record that could not be had: checks left undone, though no dose depends on them.
UNCHECKED = {"medications": "orders on record not retrieved"}


def no_dose_words(items) -> str:
    """Why no dose is suggested, for the items a check lacks (keys of ITEMS or NOT_MISSING)."""
    missing = set(items) - set(NOT_MISSING) - set(UNCHECKED)
    why = ["from missing, outdated or implausible values"] if missing or not items else []
    why += [*(["from the adult bands for a child"] if "adult" in items else []),
            *(["until it is confirmed whether the patient is on dialysis"] if "dialysis" in items else [])]
    return "No dose is suggested " + ", nor ".join(why) + "."


@frozen
class Gap:
    """A check that could not be done for an order: why, and what is missing."""

    check: str  # "renal dose", "blood count limits", "cidofovir pre-dose checks"
    reasons: tuple[str, ...]
    items: tuple[str, ...] = ()  # keys of ITEMS or NOT_MISSING
    source: str | None = None  # citation key of the label that asks for the check


def not_retrieved(facts: ClinicalFacts) -> tuple[str, ...]:
    """Parts of the record the EHR's data could not be had for (why inputs may look missing)."""
    return tuple(q.detail for q in facts.quality if q.kind == "missing" and q.item in RECORD_PARTS)


def retrieved(facts: ClinicalFacts, part: str) -> bool:
    """Whether a part of the record ("allergies", "medications") was had: an absence in it means
    something only then."""
    return not any(q.kind == "missing" and q.item == part for q in facts.quality)


def missing_data_finding(
    order: MedicationOrder, drug: str, gaps: list[Gap], extra: str = "", not_retrieved: tuple[str, ...] = (),
    pending: frozenset[str] = frozenset(),
) -> Finding | None:
    """`pending`: items a preliminary result is on record for (resulting): said, not ordered again."""
    if not gaps:
        return None
    items = list(dict.fromkeys(i for g in gaps for i in g.items))
    # Each reason once, with every check that lacks it ("renal dose; cidofovir pre-dose checks: no weight").
    needed_by: dict[str, list[str]] = {}
    for gap in gaps:
        for reason in gap.reasons:
            needed_by.setdefault(reason, [])
            if gap.check not in needed_by[reason]:
                needed_by[reason].append(gap.check)
    checks: dict[str, list[str]] = {}
    for reason, names in needed_by.items():
        checks.setdefault("; ".join(names), []).append(reason)
    # Dialysis on record beside a higher clearance, or a child, is nothing missing: the summary says what it is.
    judged = [NOT_MISSING[i] for i in items if i in NOT_MISSING] + [UNCHECKED[i] for i in items if i in UNCHECKED]
    what = ", ".join(ITEMS[i][0].split(" (")[0] for i in items if i in ITEMS)
    what = what or ("" if judged else "inputs")
    head = f"{drug.capitalize()} order not fully checked: "
    missing = [f"{what} missing, outdated or unreadable"] if what else []
    # Too long for a summary: the unretrieved orders go to the detail before the missing inputs do.
    summary = fitting(head + "; ".join([*missing, *judged]),
                      head + "; ".join([*missing, *(j for j in judged if j not in UNCHECKED.values())]),
                      *([head + missing[0]] if missing else []),
                      head + "inputs missing, outdated or unreadable")
    lines = [f"**Order:** {order.describe()}", "", "**Could not be checked:**"]
    for check, reasons in checks.items():
        lines.append(f"- {check}: " + "; ".join(reasons))
    if not_retrieved:
        lines += ["", "**Not retrieved from the EHR:** " + "; ".join(not_retrieved) + "."]
    needed = [ITEMS[i][0] for i in items if i in ITEMS]
    if needed:
        lines += ["", "**Needed:** " + ", ".join(needed) + "."]
    if waiting := [ITEMS[i][0] for i in items if i in pending]:
        lines.append("**Resulting:** " + ", ".join(waiting) + ": a preliminary result is on record (above), so it is not "
                     "ordered again; the check waits for the final result.")
    if not items or set(items) - set(UNCHECKED):  # else no dose was held back
        lines += ["", no_dose_words(items)]
    if extra:
        lines += ["", extra]
    proposals = tuple(
        LabOrderProposal(label=f"Order {ITEMS[i][0]}", test=ITEMS[i][1])
        for i in items
        if i in ITEMS and ITEMS[i][1] is not None and ITEMS[i][1] not in ("weight", "height") and i not in pending
    )
    sources = tuple(dict.fromkeys(g.source for g in gaps if g.source)) or (f"{drug}-label",)
    return Finding(
        topic="missing-data",
        indicator="warning",
        summary=summary,
        detail="\n".join(lines),
        sources=cite(*sources),
        proposals=proposals,
        selection="any",
        # Orders on record not retrieved and nothing else: no result to wait for; the co-medications are known.
        override_reasons=("already-addressed", "interaction-managed") if items and set(items) <= set(UNCHECKED)
        else ("lab-result-pending", "newer-result-elsewhere", "already-addressed"),
        order_id=order.id,
        key=f"missing-data|{order.id}",
    )
