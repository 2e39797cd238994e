"""How the order-safety rules read their inputs from the facts, and show them in a card.

"The newest value that is recent enough" is the facts layer's (facts/quality.py: a stale value never
drives a decision); here are "is this value below (above) a limit", "is it low", treatment-level
viraemia, and number formatting.
"""

from __future__ import annotations

import math

from datetime import datetime, timedelta
from typing import Iterable

from cds_service.facts import quality
from cds_service.facts.model import ClinicalFacts, ConditionFacts, DosingWeight, Measurement, decimals_beside, times_weekly
from cds_service.facts.quality import label
from cds_service.frozen import frozen
from cds_service.policy import Policy

# Analyte names in a card: the facts layer's words, with total calcium told apart from ionized.
_NAMES = {"calcium": "total calcium", "anc": "ANC", "platelets": "platelets"}


def name(analyte: str) -> str:
    return _NAMES.get(analyte, label(analyte))


def inputs_block(inputs: Iterable[str]) -> list[str]:
    """A card's 'Inputs' list (after a blank line): what a dose was computed from."""
    return ["", "**Inputs:**", *(f"- {line}" for line in inputs)]


def recorded_as(conditions: ConditionFacts, evidence_label: str) -> str:
    """'Condition/4: ICD-10-CM Z99.2; ...': the records that document `evidence_label`."""
    return "; ".join(f"{e.source_id}: {e.matched_by}" for e in conditions.evidence if e.label == evidence_label)


def current(facts: ClinicalFacts, analyte: str, max_age_days: float) -> Measurement | None:
    """The newest value of `analyte` if it is at most `max_age_days` old (facts.quality.current)."""
    return quality.current(facts, analyte, max_age_days)


def why_not_current(facts: ClinicalFacts, analyte: str, max_age_days: float) -> str:
    """Why `current` found nothing, in the facts layer's words (missing, or stale with its age)."""
    issue = quality.unavailable(facts, analyte, max_age_days)
    return issue.detail if issue else f"no current {name(analyte)}"


def below(m: Measurement, limit: float) -> bool | None:
    """Is the measured value below `limit`?  None when a reported bound cannot tell ('>400')."""
    if m.comparator in ("<", "<="):
        return True if m.value < limit or (m.comparator == "<" and m.value == limit) else None
    if m.comparator in (">", ">="):
        return False if m.value >= limit else None
    return m.value < limit


def above(m: Measurement, limit: float) -> bool | None:
    """Is the measured value above `limit`?  None when a reported bound cannot tell ('<2.0')."""
    if m.comparator in (">", ">="):
        return True if m.value > limit or (m.comparator == ">" and m.value == limit) else None
    if m.comparator in ("<", "<="):
        return False if m.value <= limit else None
    return m.value > limit


def flagged_low(m: Measurement) -> bool:
    """Low by the lab's own flag (L, LL) or below the lab's reference range."""
    return m.interpretation in ("L", "LL") or (m.reference_low is not None and below(m, m.reference_low) is True)


def flagged_high(m: Measurement) -> bool:
    """High by the lab's own flag (H, HH) or above the lab's reference range."""
    return m.interpretation in ("H", "HH") or (m.reference_high is not None and above(m, m.reference_high) is True)


def high_basis(m: Measurement) -> str:
    """Why a value counts as high (flagged_high), in words for the card."""
    if m.interpretation in ("H", "HH"):
        return f"flagged {m.interpretation} by the lab"
    return f"above the lab's reference high {fmt(m.reference_high)} {m.unit}"


def resulting(facts: ClinicalFacts, analyte: str, max_age_days: float) -> bool:
    """Whether the analyte's newest result is a current preliminary one (it hides the older ones, unused): a test
    resulting, not one to order again.  An old one, or one dated past the future tolerance, is no test under way."""
    at = facts.labs.preliminary_at.get(analyte)
    if at is None:
        return False
    age_days = (facts.evaluated_at - at).total_seconds() / 86400
    return -quality.FUTURE_TOLERANCE_DAYS <= age_days <= max_age_days


def is_low(m: Measurement, policy_low: float) -> bool:
    """Low by the lab's flag or reference range; by the policy's limit only when the lab gives neither (a flag
    with no direction, A for abnormal, gives none: it cannot say the value is not low)."""
    if m.interpretation not in (None, "A") or m.reference_low is not None:
        return flagged_low(m)
    return below(m, policy_low) is True


def low_limit(m: Measurement, policy_low: float | None = None) -> float | None:
    """The limit low_basis names (None when the lab's flag decides): a value is shown beside it."""
    if m.interpretation in ("L", "LL"):
        return None
    return m.reference_low if m.reference_low is not None else policy_low


def high_limit(m: Measurement) -> float | None:
    """The limit high_basis names (None when the lab's flag decides)."""
    return None if m.interpretation in ("H", "HH") else m.reference_high


def low_basis(m: Measurement, policy_low: float | None = None) -> str:
    """Why a value counts as low, in words for the card."""
    if m.interpretation in ("L", "LL"):
        return f"flagged {m.interpretation} by the lab"
    if m.reference_low is not None:
        return f"below the lab's reference low {fmt(m.reference_low)} {m.unit}"
    return f"below the local lower limit {fmt(policy_low)} {m.unit} (policy)"


def show(m: Measurement, beside: float | None = None) -> str:
    """'1.8 mg/dL (2026-11-20), reported as 159 umol/L' - the value and, if converted, the original
    (`beside`: a limit it is compared with, which its digits keep it on the right side of)."""
    text = m.describe(beside)
    if m.reported and m.reported.replace(" ", "") != f"{m.comparator or ''}{m.value:g}{m.unit}".replace(" ", ""):
        text += f", reported as {m.reported}"
    return text


def treatment_level_viraemia(
    facts: ClinicalFacts, policy: Policy, *, stale: bool = False, broken: bool = False, uncompared: bool = False
) -> str | None:
    """Why the record shows CMV viraemia at a treatment level, in words; None if it does not.

    Positive = detected and, when the policy sets a threshold, at or above it in IU/mL (the brief: two
    consecutive positive PCRs, the threshold being local policy).  Treatment level = the newest
    `preemptive_consecutive_pcr` results all positive, or the newest `preemptive_pp65_positive` pp65
    tests all positive, the newest of them no older than `preemptive_result_max_age_days` (old
    positives ask for a new test, which the monitoring cards say, not for treatment), no result taken
    between them that could not be used (it may have been negative: they are not in a row), and, for pp65,
    no PCR taken after them that found no CMV.  `stale`: the
    same rule met only by results older than that (what the monitoring card tells to repeat).  `broken`:
    the rule met but for such a result between them (what the monitoring card also tells to repeat).
    `uncompared`: a result quantified in copies/mL counts as positive whatever the threshold in IU/mL, which it
    cannot be compared with (trigger_not_comparable).

    The regimen, status, HSCT and order cards all ask: read once per evaluation and question (facts.once).
    """
    return facts.once(("treatment_level_viraemia", stale, broken, uncompared),
                      lambda: _treatment_level_viraemia(facts, policy, stale, broken, uncompared), policy)


def _treatment_level_viraemia(facts: ClinicalFacts, policy: Policy, stale: bool, broken: bool, uncompared: bool) -> str | None:
    oldest_allowed = facts.evaluated_at - timedelta(days=policy.preemptive_result_max_age_days)

    # A PCR taken after a positive pp65 that found no CMV (not detected; not a bound that may have been): the
    # pp65 is no trigger.  Not the other way round: pp65 is the less sensitive test, and a negative one does
    # not undo positive PCRs.
    negatives = [r.effective for r in facts.viral_load.results
                 if r.negative and r.effective is not None]
    newest_negative_pcr = max(negatives, default=None)

    def not_cleared_by_a_pcr(effective: datetime | None) -> bool:
        return newest_negative_pcr is None or (effective is not None and effective >= newest_negative_pcr)

    n = policy.preemptive_consecutive_pcr
    counted = _newest_positive_pcrs(facts, policy, n, stale, broken, uncompared) if n > 0 else None
    if counted:
        shown = "; ".join(r.describe() for r in counted)
        level = _level(policy.preemptive_viral_load_iu_ml, uncompared)
        return f"{n} {'' if broken else 'consecutive '}positive CMV PCR results{level}: {shown}"
    k = policy.preemptive_pp65_positive
    pp65 = facts.pp65
    if (k > 0 and len(pp65) >= k and _recent(pp65[0].effective, oldest_allowed, stale) and all(p.positive for p in pp65[:k])
            and _in_a_row(pp65[:k], facts.pp65_unread, broken) and not_cleared_by_a_pcr(pp65[0].effective)):
        when = "; ".join(p.date_words for p in pp65[:k])
        return f"{k} positive pp65 antigen test(s) ({when})"
    return None


def _recent(effective: datetime | None, oldest_allowed: datetime, stale: bool) -> bool:
    """Within the trigger's age (`stale`: older than it)."""
    return effective is not None and (effective < oldest_allowed) == stale


def _in_a_row(counted, unread: tuple[datetime, ...], broken: bool) -> bool:
    """No result that could not be read taken between the first and last of `counted` (it may have been negative);
    `broken`: one was."""
    return any(counted[-1].effective < t < counted[0].effective for t in unread) == broken


def _newest_positive_pcrs(facts: ClinicalFacts, policy: Policy, count: int, stale: bool = False, broken: bool = False,
                          uncompared: bool = False) -> tuple | None:
    """The newest `count` CMV PCRs, when all are positive by the trigger's rule, the newest of them recent
    (`stale`: too old) and they are in a row (`broken`: not); else None."""
    results = facts.viral_load.results[:count]
    oldest_allowed = facts.evaluated_at - timedelta(days=policy.preemptive_result_max_age_days)
    threshold = policy.preemptive_viral_load_iu_ml
    if (len(results) == count and _recent(results[0].effective, oldest_allowed, stale)
            and all(_positive(r, threshold, uncompared) for r in results)
            and _in_a_row(results, facts.viral_load.unread, broken)):
        return results
    return None


def _positive(result, threshold: float, uncompared: bool) -> bool:
    """A PCR positive by the pre-emptive trigger's rule: detected and, with a threshold, at or above it in IU/mL
    (`uncompared`: a result in copies/mL counts, as treatment_level_viraemia says)."""
    if not result.detected:
        return False
    if threshold <= 0:
        return True
    if uncompared and result.scale == "copies/mL" and result.value is not None:
        return True
    return result.scale == "IU/mL" and result.value is not None and result.value >= threshold


def _level(threshold: float, uncompared: bool = False) -> str:
    return f" ≥ {fmt(threshold)} IU/mL" if threshold > 0 and not uncompared else ""


@frozen
class AwaitingConfirmation:
    """The newest PCRs positive by the trigger's rule, fewer in a row than it needs."""

    positives: int
    needed: int
    words: str  # the rule and the positive results, for the card


def awaiting_confirmation(facts: ClinicalFacts, policy: Policy) -> AwaitingConfirmation | None:
    """The pre-emptive trigger not met yet, but the newest CMV PCRs positive by its rule, recent and in a row,
    fewer than it needs: the next ones decide.  None when the trigger needs one result only, is met (or met but
    for a result that could not be read between them: the status or HSCT card asks to repeat the PCR), a newer PCR
    could not be read (the status card asks to confirm or repeat it), or the newest PCR is not positive by it (a
    result in copies/mL against a threshold in IU/mL is trigger_not_comparable's)."""
    needed = policy.preemptive_consecutive_pcr
    results = facts.viral_load.results
    if needed < 2 or not results or results[0].effective is None or any(
            t > results[0].effective for t in facts.viral_load.unread):
        return None
    if treatment_level_viraemia(facts, policy) or treatment_level_viraemia(facts, policy, broken=True):
        return None
    counted = next(filter(None, (_newest_positive_pcrs(facts, policy, k) for k in range(needed - 1, 0, -1))), None)
    if not counted:
        return None
    shown = "; ".join(r.describe() for r in counted)
    level = _level(policy.preemptive_viral_load_iu_ml)
    return AwaitingConfirmation(len(counted), needed,
                                f"{needed} consecutive positive CMV PCR results{level}; so far {len(counted)}: {shown}")


def trigger_not_comparable(facts: ClinicalFacts, policy: Policy) -> str | None:
    """The pre-emptive trigger, by the same rule, met but for a threshold in IU/mL that results quantified in
    copies/mL cannot be compared with (no conversion factor is assumed): in words, else None."""
    if policy.preemptive_viral_load_iu_ml <= 0 or treatment_level_viraemia(facts, policy) is not None:
        return None
    met = treatment_level_viraemia(facts, policy, uncompared=True)
    return f"{met} (not all in IU/mL: the local threshold is {fmt(policy.preemptive_viral_load_iu_ml)} IU/mL)" if met else None


# ---------------------------------------------------------------------------------------------
# Formatting


def dosing_weight_line(weight: DosingWeight) -> str:
    """The dosing weight as a card's Inputs list shows it."""
    calc = f": {weight.calculation}" if weight.calculation else ""
    return f"Dosing weight {fmt(weight.kg, 2)} kg ({weight.basis} body weight){calc}; measured {show(weight.weight)}"


def fmt(x: float, decimals: int = 2, beside: float | None = None) -> str:
    """A number without trailing zeros: 175.0 -> '175', 0.625 -> '0.62' (decimals=2); with more decimals
    where fewer would put it on the other side of a limit it is compared with (`beside`)."""
    text = f"{x:.{decimals_beside(x, decimals, beside)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("0", "-0") and x != 0 and math.isfinite(x):
        return f"{x:.2g}"  # never a 0 for what is not: 0.004 mg, not 0 mg
    return "0" if text == "-0" else text


def fitting(*summaries: str, limit: int = 140) -> str:
    """The first of `summaries` under `limit` characters (CDS Hooks: < 140), else the last: a shorter wording
    of the same finding, where clip would cut it."""
    return next((s for s in summaries if len(s) < limit), summaries[-1])


def clip(summary: str, limit: int = 140) -> str:
    """A card summary under `limit` characters (CDS Hooks: < 140), cut at a word with an ellipsis."""
    if len(summary) < limit:
        return summary
    return summary[: limit - 2].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def fmt_interval(hours: float | None, schedule: str = "") -> str:
    """Short form for summaries: 'q12h', 'q48h', 'weekly', 'every 2 weeks', or the schedule words
    when not a fixed interval."""
    if hours is None:
        return schedule
    weeks = hours / 168
    if weeks >= 1 and weeks.is_integer():
        return "weekly" if weeks == 1 else f"every {fmt(weeks)} weeks"
    if (weekly := times_weekly(hours)) is not None:
        return f"{weekly}x weekly"
    return f"q{fmt(hours, 1)}h"
