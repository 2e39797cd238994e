"""Following a CMV course: the viral-load trend, the monitoring plan, the course length, and the
patient-view status card.

The viral load is compared only within one scale (IU/mL or copies/mL: not interconvertible without
the assay), in log10.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Iterable

from cds_service.clinical.drugs import running_on_record
from cds_service.clinical.findings import Finding, LabOrderProposal
from cds_service.clinical.inputs import AwaitingConfirmation, current, fitting, fmt, show
from cds_service.clinical.missing_data import retrieved
from cds_service.clinical.regimens import (
    MIN_COURSE_DAYS,
    RETINITIS_INDUCTION_DAYS,
    TherapyOrder,
    TherapyState,
    documented_barriers,
    dose_block,
    dose_for,
    evidence_lines,
    family_stops,
    next_dose_words,
    regimen_proposal,
    usable,
)
from cds_service.clinical.sources import cite, sot_guideline
from cds_service.facts import codes
from cds_service.facts.model import ClinicalFacts, Pp65Result, ViralLoadResult
from cds_service.frozen import frozen
from cds_service.policy import Policy

# Foscarnet label: creatinine clearance and electrolytes 2-3 times weekly during induction, i.e. no
# more than half a week between checks.
FOSCARNET_INDUCTION_CHECK_DAYS = 3.5
ELECTROLYTES = ("potassium", "magnesium", ("calcium", "ionized_calcium"), "phosphate")
RENALLY_CLEARED = frozenset({"ganciclovir", "valganciclovir", "foscarnet", "cidofovir"})
_STATUS_ROWS = 8  # viral-load results listed in the status card, newest first

# ---------------------------------------------------------------------------------------------
# Viral load


def log10_of(r: ViralLoadResult) -> float | None:
    """log10 of a quantified result; None when not detected or below quantification."""
    if not r.detected or r.below_quantification:
        return None
    if r.log10 is not None:
        return r.log10
    return math.log10(r.value) if r.value is not None and r.value > 0 else None


def vl_words(r: ViralLoadResult) -> str:
    """'41,000 IU/mL', 'not detected', 'detected, below quantification (<137 IU/mL)', or for a bound that does
    not say whether CMV was detected, 'below quantification (<137 IU/mL), detection not reported'."""
    if not r.detected and r.below_quantification:
        return f"below quantification{f' ({r.reported})' if r.reported else ''}, detection not reported"
    if not r.detected:
        return "not detected"
    if r.below_quantification:
        return f"detected, below quantification ({r.reported})" if r.reported else "detected, below quantification"
    if r.value is not None and r.scale:
        return f"{r.value:,.0f} {r.scale}"
    return r.reported or "detected"


def vl_dated(r: ViralLoadResult) -> str:
    return f"{vl_words(r)} ({r.date_words})"


@frozen
class Trend:
    first: ViralLoadResult  # oldest quantified result on the scale
    latest: ViralLoadResult  # newest quantified result on the scale
    change: float  # log10 latest - log10 first

    def words(self) -> str:
        direction = "up" if self.change > 0 else "down" if self.change < 0 else "unchanged"
        size = f" {abs(self.change):.1f} log10" if self.change else ""
        return f"{direction}{size} since {self.first.date_words}"


def trend(facts: ClinicalFacts) -> Trend | None:
    """First-to-latest change on the scale of the newest quantified result (None with < 2 of them)."""
    quantified = [r for r in facts.viral_load.results if r.effective and r.scale and log10_of(r) is not None]
    if not quantified:
        return None
    latest = quantified[0]
    same = [r for r in quantified if r.scale == latest.scale]
    first = same[-1]
    if first is latest:
        return None
    return Trend(first, latest, log10_of(latest) - log10_of(first))


def latest_dated_pcr(facts: ClinicalFacts) -> ViralLoadResult | None:
    return next((r for r in facts.viral_load.results if r.effective is not None), None)


def pcr_overdue(facts: ClinicalFacts, policy: Policy, *, or_pp65: bool = False) -> str | None:
    """Why weekly CMV monitoring is overdue (no dated result within the policy's interval).
    `or_pp65`: a pp65 antigen test counts too (HSCT surveillance: "weekly PCR or pp65"); during
    treatment it does not (the brief: CMV viral load by PCR weekly)."""
    pcr = latest_dated_pcr(facts)
    pp65 = next((p for p in facts.pp65 if p.effective), None) if or_pp65 else None
    tests = [(pcr.effective, f"CMV PCR {vl_dated(pcr)}")] if pcr else []
    tests += [(pp65.effective, f"pp65 antigen {pp65_dated(pp65)}")] if pp65 else []
    if not tests:
        return "no CMV PCR or pp65 result on record" if or_pp65 else "no CMV PCR result on record"
    when, last = max(tests, key=lambda t: t[0])
    age = (facts.evaluated_at - when).total_seconds() / 86400.0
    if age > policy.viral_load_monitoring_days:
        # A newer PCR was taken but could not be read: not a test left undone, one to confirm or repeat.
        newer = unread_since(facts, when)
        if newer is not None:
            return (f"the newest CMV PCR ({newer.date().isoformat()}) could not be read (listed among the CMV results not "
                    f"used) and the last readable, {last}, is {age:.0f} days old: confirm or repeat it now")
        return f"last {last} is {age:.0f} days old (weekly: every {policy.viral_load_monitoring_days} days)"
    return None


def unread_since(facts: ClinicalFacts, when: datetime) -> datetime | None:
    """The newest CMV PCR taken after `when` that could not be read (ViralLoadSeries.unread), if any."""
    return max((t for t in facts.viral_load.unread if t > when), default=None)


def pp65_dated(p: Pp65Result) -> str:
    return f"{'positive' if p.positive else 'negative'} ({p.date_words})"


# ---------------------------------------------------------------------------------------------
# Monitoring plan


@frozen
class Check:
    test: str  # cards test key
    name: str
    why: str  # "last 2026-11-10, 16 days ago"
    recurrence: str


def overdue_checks(facts: ClinicalFacts, policy: Policy, therapy: TherapyState) -> tuple[Check, ...]:
    drugs = {t.drug for t in therapy.in_course}
    foscarnet_induction = any(t.drug == "foscarnet" and t.kind == "treatment" for t in therapy.treating)
    checks: list[Check] = []
    # The brief's weekly PCR runs until CMV DNA is no longer detected: on maintenance alone with the newest
    # PCR not detected it is done (HIV retinitis on months of maintenance is followed by the eye).
    latest = facts.viral_load.latest
    controlled = all(t.kind == "maintenance" for t in therapy.in_course) and latest is not None and latest.negative
    pcr = None if controlled else pcr_overdue(facts, policy)
    if pcr:
        checks.append(Check("cmv-pcr", "CMV PCR", pcr, "weekly"))
    cbc = _stale(facts, ("platelets", "hemoglobin", ("anc", "wbc")), policy.blood_count_max_age_days)
    if cbc:
        checks.append(Check("cbc", "CBC", cbc, "weekly"))
    lab_days = FOSCARNET_INDUCTION_CHECK_DAYS if foscarnet_induction else None
    recurrence = "2-3 times weekly" if foscarnet_induction else "weekly"
    if drugs & RENALLY_CLEARED:
        creatinine = _stale(facts, ("creatinine",), lab_days or policy.creatinine_max_age_days)
        if creatinine:
            checks.append(Check("creatinine", "serum creatinine", creatinine, recurrence))
    if "foscarnet" in drugs:
        electrolytes = _stale(facts, ELECTROLYTES, lab_days or policy.electrolyte_max_age_days)
        if electrolytes:
            checks.append(Check("electrolytes", "electrolytes", electrolytes, recurrence))
    return tuple(checks)


def _stale(facts: ClinicalFacts, analytes, max_age_days: float) -> str | None:
    """What is missing or older than `max_age_days` among `analytes` (a tuple entry = any one of)."""
    problems = []
    for entry in analytes:
        options = entry if isinstance(entry, tuple) else (entry,)
        if any(current(facts, a, max_age_days) for a in options):
            continue
        newest = [m for a in options for m in facts.labs.series(a)[:1] if m.effective]
        name = " or ".join(a.replace("_", " ") for a in options)
        if newest:
            m = max(newest, key=lambda m: m.effective)
            problems.append(f"{name} last {show(m)}")
        else:
            problems.append(f"no {name} on record")
    if not problems:
        return None
    return "; ".join(problems) + f" (interval {fmt(max_age_days, 1)} days)"


def _leading(orders: tuple[TherapyOrder, ...], today: date) -> TherapyOrder | None:
    """The order a card leads with: the first begun (orders on record are newest first, so an order set's
    next phase, not begun, would come before the one being given)."""
    return next((t for t in orders if t.begun(today)), orders[0] if orders else None)


def monitoring_plan(facts: ClinicalFacts, policy: Policy, therapy: TherapyState) -> Finding | None:
    """monitoring-plan: on anti-CMV treatment with a monitoring test overdue (silent when all are
    current: the status card shows the plan is being followed)."""
    treating = therapy.in_course
    if not treating:
        return None
    checks = overdue_checks(facts, policy, therapy)
    if not checks:
        return None
    now = facts.evaluated_at.date()
    main = _leading(treating, now)
    days = main.days_on(now)
    on = f"On {main.drug}" + (f" ({days} days)" if days is not None and main.begun(now) else "")
    drugs = {t.drug for t in treating}
    plan = [
        f"CMV PCR weekly (every {policy.viral_load_monitoring_days} days) until CMV DNA is no longer detected",
        f"CBC at least weekly (neutropenia, thrombocytopenia, anaemia; every {policy.blood_count_max_age_days} days)",
    ]
    labels = []  # the labels whose monitoring the plan quotes
    if drugs & RENALLY_CLEARED:
        plan.append("renal function (creatinine clearance) for the renal dose")
    if "foscarnet" in drugs:
        labels.append("foscarnet-label")
        plan.append(
            "foscarnet: creatinine clearance and electrolytes (potassium, magnesium, calcium including ionised, "
            "phosphate) 2-3 times weekly in induction, every 1-2 weeks in maintenance (label)"
        )
    if "cidofovir" in drugs:
        labels.append("cidofovir-label")
        plan.append("cidofovir: serum creatinine and urine protein within 48 h before each dose (label)")
    detail = "\n\n".join(
        [
            "**Therapy:** " + "; ".join(t.describe() for t in treating) + ".",
            "**Monitoring during treatment:** " + "; ".join(plan) + ".",
            "**Overdue:** " + "; ".join(f"{c.name}: {c.why}" for c in checks) + ".",
        ]
    )
    return Finding(
        topic="monitoring-plan",
        indicator="info",
        summary=f"{on}: overdue " + ", ".join(c.name for c in checks),
        detail=detail,
        sources=cite("clinical-brief", *labels, *sot_guideline(facts)),
        proposals=tuple(
            LabOrderProposal(f"Order {c.name} ({c.recurrence})", c.test, recurrence=c.recurrence) for c in checks
        ),
        selection="any",
        override_reasons=("monitoring-arranged", "lab-result-pending", "newer-result-elsewhere"),
        key="monitoring-plan",
    )


# ---------------------------------------------------------------------------------------------
# Course length


def short_course(facts: ClinicalFacts, t: TherapyOrder) -> Finding | None:
    """treatment-duration: a treatment course set to end before 2 weeks (valganciclovir for CMV
    retinitis in HIV: before its 21 days of induction).  IV ganciclovir is left out: its 3-5 day IV
    phase is followed by an oral step-down, and that order carries the course."""
    if t.kind != "treatment" or t.drug == "ganciclovir" or t.one_dose:
        return None
    end = t.planned_end
    if end is None or t.start is None:
        return None
    if t.begins is not None and end < t.begins:
        # A draft with an end date and no start (it starts when signed): the end has passed.
        return _duration_finding(
            t, f"{t.drug.capitalize()} order ends {end.isoformat()}, before it begins ({t.begins.isoformat()})",
            f"**Order:** {t.describe()}; end {end.isoformat()}: no dose falls between its start and its end, "
            "so its course length cannot be checked.", facts)
    days = (end - t.start).days + 1  # both ends counted
    c = facts.conditions
    retinitis = t.drug == "valganciclovir" and c.hiv_retinitis
    if retinitis:
        minimum, rule = RETINITIS_INDUCTION_DAYS, "HIV CMV retinitis induction is 21 days"
    else:
        minimum, rule = MIN_COURSE_DAYS, "CMV treatment is at least 2 weeks"
    if days >= minimum:
        return None
    course = f"{days} days" + (f" (course since {t.start.isoformat()})" if t.start != t.order.start else "")
    return _duration_finding(
        t,
        f"{t.drug.capitalize()} course set to {days} days: {rule}",
        f"**Order:** {t.describe()}; planned end {end.isoformat()}: {course}.",
        facts,
        ("valganciclovir-label",) if retinitis else (),
        "HIV CMV retinitis: valganciclovir 900 mg twice daily for 21 days (induction), then 900 mg once daily "
        "(maintenance) (label; clinical brief)." if retinitis else None,
    )


def stopping_while_detectable(facts: ClinicalFacts, policy: Policy, t: TherapyOrder) -> Finding | None:
    """treatment-duration: a treatment order ending (or ended) while CMV DNA is still detected."""
    if t.kind == "prophylaxis":
        return None
    end = t.planned_end
    latest = latest_dated_pcr(facts)
    if end is None or latest is None or not latest.detected:
        return None
    today = facts.evaluated_at.date()
    if t.one_dose and t.order.status != "stopped" and today <= end + timedelta(days=policy.cidofovir_course_gap_days):
        return None  # the course goes on with the next dose's order (within the course gap, local policy)
    if running_on_record(t.order, facts):
        if end > today + timedelta(days=policy.viral_load_monitoring_days):
            return None
        verb = "ends" if end >= today else "was due to end"
    else:
        before = [r for r in facts.viral_load.results if r.effective and r.effective.date() <= end]
        if not before:
            return None
        # It stopped after an undetectable result (and no PCR after it to the end went unread): a later rise
        # is a new episode.
        unread = any(before[0].effective <= when and when.date() <= end for when in facts.viral_load.unread)
        if not (before[0].detected or unread):
            return None
        verb = "stopped"
    return _duration_finding(
        t,
        f"{t.drug.capitalize()} {verb} {end.isoformat()} while CMV is detectable ({vl_words(latest)})",
        f"**Order:** {t.describe()}; end {end.isoformat()}. **Latest CMV PCR:** {vl_dated(latest)}.",
        facts,
    )


# IV ganciclovir "for the first 3-5 days; then, after clinical improvement, oral valganciclovir" (brief).
IV_PHASE_DAYS = 5


def oral_step_down(facts: ClinicalFacts, policy: Policy, therapy: TherapyState) -> Finding | None:
    """cmv-treatment-regimen (info): IV ganciclovir treatment past its first 3-5 days with no oral
    valganciclovir ordered: the brief's step-down, after clinical improvement (which the clinician
    judges; the viral-load trend is shown).  Not for CNS disease (ganciclovir plus foscarnet) nor HIV
    retinitis alone (its own card: 21 days of induction, oral in the brief); beside other CMV disease the oral
    step-down continues the retinitis' induction, until the retinitis card steps it down to maintenance (21
    days over and the other disease cleared in blood)."""
    c = facts.conditions
    if "cns" in c.cmv_disease_sites or c.hiv_retinitis_only:
        return None
    today = facts.evaluated_at.date()
    iv = [t for t in therapy.treating
          if t.drug == "ganciclovir" and t.kind == "treatment" and (t.days_on(today) or 0) >= IV_PHASE_DAYS]
    if not iv or therapy.on(("valganciclovir",)) or documented_barriers(c, "valganciclovir"):
        return None  # the alternative-therapy card speaks for documented intolerance or resistance
    t = iv[0]
    retinitis_induction_over = c.hiv_retinitis and (t.days_on(today) or 0) >= RETINITIS_INDUCTION_DAYS
    if retinitis_induction_over and course_end_pcrs(facts, policy) is not None:
        return None  # the HIV retinitis card steps the course down to maintenance
    kin = therapy.kin(t)  # a second ganciclovir course, a prophylactic valganciclovir dose: stopped with it
    oral = dose_for("valganciclovir", "induction", facts, policy)
    if not usable(oral):
        return None  # no valganciclovir dose for this patient (e.g. on haemodialysis): nothing to step down to
    change = trend(facts)
    blocks = [
        f"**Course:** {t.describe()} ({t.order.id}): day {t.days_on(today)}.",
        f"**Viral load:** {change.words()} ({vl_dated(change.latest)})." if change else
        "**Viral load:** no trend on record (fewer than two quantified results on one scale).",
        "**Regimen (clinical brief):** IV ganciclovir 5 mg/kg every 12 h for the first 3-5 days; then, after "
        "clinical improvement, oral valganciclovir 900 mg every 12 h (dosed for kidney function), with food, "
        "completing a course of at least 2 weeks.",
        dose_block("Step down to", oral),
        None if not c.hiv_retinitis else
        ("**HIV CMV retinitis too:** its 21 days of induction are over; maintenance follows once the other CMV disease "
         "is cleared in blood (the HIV retinitis card says when).") if retinitis_induction_over else
        ("**HIV CMV retinitis too:** the valganciclovir induction above completes 21 days of induction in all, then "
         "maintenance (the HIV retinitis card says when)."),
        f"Stop the IV ganciclovir order ({t.order.id}) when valganciclovir starts: the step-down offered here "
        "discontinues it as it orders.",
        *family_stops(t.drug, kin, "the step-down offered here"),
    ]
    return Finding(
        topic="cmv-treatment-regimen",
        indicator="info",
        summary=f"IV ganciclovir day {t.days_on(today)}: after clinical improvement, step down to oral valganciclovir "
        f"{fmt(oral.dose_mg)} mg {oral.schedule}",
        detail="\n\n".join(b for b in blocks if b),
        sources=cite("clinical-brief", "valganciclovir-label"),
        proposals=(regimen_proposal(oral, verb="Step down to", discontinues=(t.order.id, *(o.order.id for o in kin))),),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=t.order.id,
        key=f"cmv-treatment-regimen|{t.order.id}",
    )


def course_end_pcrs(facts: ClinicalFacts, policy: Policy) -> list[ViralLoadResult] | None:
    """The newest `course_end_negative_pcr` CMV PCRs, when they are undetectable, weekly (at least
    `course_end_pcr_min_gap_days` apart), the newest within the weekly interval and no unread PCR among them:
    the brief's end of a treatment course as far as the blood goes; else None."""
    if policy.course_end_negative_pcr <= 0:
        return None
    results = _weekly_results(facts.viral_load.results, policy.course_end_negative_pcr,
                              timedelta(days=policy.course_end_pcr_min_gap_days))
    if (results is None or facts.evaluated_at - results[0].effective > timedelta(days=policy.viral_load_monitoring_days)
            or not facts.viral_load.read_through(results[-1].effective)):  # an unread PCR among them may be detected
        return None
    return results


def _weekly_results(results, n: int, gap: timedelta) -> list[ViralLoadResult] | None:
    """The newest `n` dated results at least `gap` apart (a repeat within the same week is skipped),
    if every result down to the oldest of them is undetectable; else None."""
    chosen: list[ViralLoadResult] = []
    for r in results:
        if r.detected or r.effective is None:
            return None
        if not chosen or chosen[-1].effective - r.effective >= gap:
            chosen.append(r)
            if len(chosen) == n:
                return chosen
    return None


def courses_can_end(facts: ClinicalFacts, policy: Policy, courses: Iterable[TherapyOrder]) -> Finding | None:
    """treatment-duration (info): treatment courses of at least 2 weeks, open-ended or planned beyond
    today, while the newest `course_end_negative_pcr` PCRs are undetectable, weekly (at least
    `course_end_pcr_min_gap_days` apart) and the newest within the weekly interval: the brief's end of
    treatment, once clinical resolution is confirmed.  One card for all such courses (ganciclovir with
    foscarnet in CNS disease, an IV course beside its oral step-down): the PCRs that end one end them
    all.  Not for HIV retinitis (maintenance follows induction)."""
    n = policy.course_end_negative_pcr
    if facts.conditions.hiv_retinitis or n <= 0:
        return None
    today = facts.evaluated_at.date()
    ending = [
        (t, days) for t in courses
        if t.kind == "treatment" and (days := t.days_on(today)) is not None and days >= MIN_COURSE_DAYS
        and (t.planned_end is None or t.planned_end > today)
    ]
    results = course_end_pcrs(facts, policy) if ending else None
    if results is None:
        return None
    courses_words = " and ".join(f"{t.drug} day {days}" for t, days in ending)
    subject = "the course can end" if len(ending) == 1 else "the courses can end"
    lines = [
        f"**Course:** {t.describe()} ({t.order.id}): day {days}"
        + (f", planned to {t.planned_end.isoformat()}." if t.planned_end else ", no end date.")
        for t, days in ending
    ]
    first = ending[0][0]
    return Finding(
        topic="treatment-duration",
        indicator="info",
        summary=fitting(
            f"{courses_words[0].upper()}{courses_words[1:]}, CMV PCR undetectable {n} times in a row: "
            f"{subject} once clinical resolution is confirmed",
            f"CMV PCR undetectable {n} times in a row: {subject} once clinical resolution is confirmed",
        ),
        detail="\n\n".join([
            "\n".join(lines),
            f"**Newest CMV PCR results:** {'; '.join(vl_dated(r) for r in results)}.",
            "Treat for at least 2 weeks and until clinical resolution and CMV DNA below the threshold in one or two "
            f"consecutive weekly results (clinical brief; {n} here, `CDS_POLICY_COURSE_END_NEGATIVE_PCR`). Whether "
            "the disease has resolved clinically is the clinician's call.",
        ]),
        sources=cite("clinical-brief", "resistance-definitions"),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=first.order.id,
        key=f"treatment-duration|{first.order.id}",
    )


def _duration_finding(
    t: TherapyOrder, summary: str, inputs: str, facts: ClinicalFacts, labels: tuple[str, ...] = (),
    rule: str | None = None,
) -> Finding:
    """`rule`: the course length that applies, when not the general one (HIV retinitis induction)."""
    detail = f"{inputs}\n\n" + (rule or (
        "Treat for at least 2 weeks and until clinical resolution and CMV DNA below the "
        "threshold in one or two consecutive weekly results (clinical brief; resistance definitions)."
    ))
    # The general rule is the brief's and the resistance definitions'; Kotton 2025 is the SOT guideline.
    sources = ["clinical-brief", *(() if rule else ("resistance-definitions",)), *sot_guideline(facts), *labels]
    if "sot" in facts.conditions.populations:
        detail += " After solid-organ transplant courses are often longer (median 21 days for pre-emptive therapy)."
        sources.append("sot-valganciclovir-2008")
    return Finding(
        topic="treatment-duration",
        indicator="warning",
        summary=summary,
        detail=detail,
        sources=cite(*sources),
        override_reasons=("patient-specific-regimen", "specialist-directed", "already-addressed"),
        order_id=t.order.id,
        key=f"treatment-duration|{t.order.id}",
    )


# ---------------------------------------------------------------------------------------------
# Status (patient-view)


def cmv_relevant(facts: ClinicalFacts, therapy: TherapyState, hsct_in_window: bool) -> bool:
    """Does the patient have anything to do with CMV?  If not, patient-view stays silent.  Negative
    PCR or pp65 results alone do not count: a status card for them would stay on every chart view for
    as long as the results are read (a year), saying nothing is wrong."""
    c = facts.conditions
    return bool(
        c.cmv_disease
        or c.cmv_infection
        or c.resistant_drugs  # documented resistance to any anti-CMV drug, or a resistance mutation
        or c.resistance_genes
        or any(r.detected for r in facts.viral_load.results)
        or any(p.positive for p in facts.pp65)
        or therapy.active
        or therapy.between_doses
        or hsct_in_window
    )


def cmv_status(
    facts: ClinicalFacts, policy: Policy, therapy: TherapyState, context: tuple[str, ...] = (), unacted: str | None = None,
    not_comparable: str | None = None, awaiting: AwaitingConfirmation | None = None, broken: str | None = None,
) -> Finding:
    """cmv-status: the viral-load trend and current therapy with its day count.  `unacted`: positive results
    at the pre-emptive trigger too old to start therapy on (words), which no other card speaks of: a warning
    to repeat the PCR now.  `not_comparable`: positive results the trigger's threshold cannot be compared
    with (copies/mL): a warning that the trigger could not be checked.  `awaiting`: a recent positive short of
    the trigger's count (info: the next PCR decides).  `broken`: the trigger met but for a result that could not be
    read between the positives (a warning to repeat the PCR now)."""
    today = facts.evaluated_at.date()
    latest = latest_dated_pcr(facts)
    change = trend(facts)
    parts = []
    if latest is not None:
        parts.append(f"CMV PCR {vl_dated(latest)}" + (f", {change.words()}" if change and change.latest is latest else ""))
    else:
        parts.append("No CMV PCR on record")
    main = _leading(therapy.in_course or therapy.prophylaxis, today)
    beside = ""
    if main is not None:
        words = f"{main.drug} prophylaxis" if main.kind == "prophylaxis" else f"on {main.drug}"
        parts.append(" ".join(filter(None, (words, main.days_words(today)))))
        # Another drug given with it (ganciclovir with foscarnet in CNS disease): named, not left to the detail.
        others = dict.fromkeys(t.drug for t in therapy.in_course if t.begun(today) and t.drug != main.drug)
        beside = f", with {' and '.join(others)}" if main.kind != "prophylaxis" and others else ""
    else:
        # An absence in orders on record that could not be had proves nothing.
        parts.append("no anti-CMV therapy" if retrieved(facts, "medications") else "anti-CMV therapy unknown (orders not retrieved)")
    summary = fitting("; ".join(parts) + beside, "; ".join(parts))
    # What the pre-emptive trigger's state asks of the status card: its words in the summary, and its block (last).
    trigger = None
    if unacted:
        # A newer PCR that could not be read was taken: the positives were repeated, unreadably.
        said = "newest PCR unreadable" if latest is not None and unread_since(facts, latest.effective) else "not repeated"
        summary = fitting(f"{summary}: positive results {said}, repeat CMV PCR now",
                          f"CMV PCR positive results {said}: repeat CMV PCR now")
        trigger = (f"**Trigger met, but more than {policy.preemptive_result_max_age_days} days ago:** {unacted}. "
                   "Repeat the CMV PCR now: if it is positive, pre-emptive therapy is due.")
    elif broken:
        summary = fitting(f"{summary}: a PCR between positives unreadable, repeat CMV PCR now",
                          "CMV PCR positive results with an unreadable PCR between them: repeat CMV PCR now")
        trigger = (f"**Trigger met but for a result between the positives that could not be read:** {broken}. It may "
                   "have been negative, so they are not counted as in a row. Repeat the CMV PCR now: if it is positive, "
                   "pre-emptive therapy is due.")
    elif not_comparable:
        summary = fitting(f"{summary}: pre-emptive trigger not checked (copies/mL)",
                          "CMV PCR positive in copies/mL: pre-emptive trigger (IU/mL) not checked")
        trigger = (f"**Pre-emptive trigger not checked:** {not_comparable}. Copies/mL are not converted to IU/mL "
                   "(the factor depends on the assay): compare with the laboratory's IU/mL result, or decide with "
                   "infectious diseases whether pre-emptive therapy is due.")
    elif awaiting:
        summary = fitting(f"{summary}; {awaiting.positives} of {awaiting.needed} positive PCRs for pre-emptive therapy",
                          summary)
        left = awaiting.needed - awaiting.positives
        trigger = (f"**Pre-emptive trigger (local policy):** {awaiting.words}. " + (
            "The next CMV PCR decides: if it is positive too, pre-emptive therapy is due" if left == 1 else
            f"{left} more positive CMV PCR results in a row make pre-emptive therapy due") +
            (" (clinical brief: after two consecutive positive PCR results)." if awaiting.needed == 2 else
             " (the brief gives two consecutive positive PCR results; the count is local policy)."))
    repeat = bool(unacted or broken)  # a PCR to order now

    blocks = [_results_table(facts, change)]
    if facts.pp65:
        shown = "; ".join(pp65_dated(p) for p in facts.pp65[:_STATUS_ROWS])
        blocks.append(f"**pp65 antigenaemia:** {shown}.")
    # CMV results that could not be used (unreadable, undated, or of one time and disagreeing): the table's
    # newest may not be the newest on record, and no rule counts results in a row across them.
    unused = [q.detail for item in (codes.VIRAL_LOAD, codes.PP65) for q in facts.issues_for(item)]
    if unused:
        blocks.append("**CMV results not used:** " + "; ".join(unused) + ".")
    if therapy.active:
        lines = []
        for t in therapy.active:
            # describe() gives the course's start; the count alone beside it (not its date twice).
            counted = f", {words}" if (words := t.days_words(today, dated=False)) else ""
            unread = f"; not read: {'; '.join(t.order.problems)}" if t.order.problems else ""
            lines.append(f"- {t.describe()}{counted} ({t.order.id}; phase {t.phase_basis}{unread})")
        blocks.append("**Anti-CMV therapy:**\n" + "\n".join(lines))
    else:
        blocks.append("**Anti-CMV therapy:** none active on record.")
    blocks += [f"**Between doses:** {next_dose_words(t, policy.cidofovir_course_gap_days)}." for t in therapy.between_doses]
    c = facts.conditions
    evidence = evidence_lines(c.evidence)
    if evidence:
        blocks.append("**Conditions:** " + "; ".join(evidence) + ".")
    blocks += list(context)
    # Off treatment after HSCT a pp65 test is weekly monitoring too, as on the hsct-preemptive card.
    or_pp65 = "hsct" in facts.conditions.populations and not therapy.in_course
    due = pcr_overdue(facts, policy, or_pp65=or_pp65)
    on_time = "CMV PCR or pp65" if or_pp65 else "CMV PCR"
    blocks.append(f"**Monitoring:** {due}." if due else f"**Monitoring:** {on_time} within the weekly interval.")
    blocks.append(trigger)
    return Finding(
        topic="cmv-status",
        indicator="warning" if repeat or not_comparable else "info",
        summary=summary,
        detail="\n\n".join(b for b in blocks if b),
        sources=cite("clinical-brief"),
        proposals=(LabOrderProposal("Order CMV PCR", "cmv-pcr", recommended=True),) if repeat else (),
        override_reasons=("monitoring-arranged", "lab-result-pending", "newer-result-elsewhere") if repeat else (),
        key="cmv-status",
    )


def _results_table(facts: ClinicalFacts, change: Trend | None) -> str:
    results = facts.viral_load.results
    if not results:
        return "**CMV viral load:** no results on record."
    rows = ["| Date | CMV PCR | log10 | Source |", "|---|---|---|---|"]
    for r in results[:_STATUS_ROWS]:
        when = r.date_words
        log = log10_of(r)
        rows.append(f"| {when} | {vl_words(r)} | {f'{log:.2f}' if log is not None else '-'} | {r.source_id} |")
    more = f"\n\n{len(results) - _STATUS_ROWS} older results not shown." if len(results) > _STATUS_ROWS else ""
    scales = {r.scale for r in results if r.scale}
    note = ""
    if len(scales) > 1:
        note = "\n\nResults are on more than one scale (IU/mL and copies/mL): only results on the same scale are compared."
    if change:
        note += (
            f"\n\n**Trend ({change.latest.scale}):** {vl_dated(change.first)} to {vl_dated(change.latest)}: "
            f"{change.change:+.2f} log10."
        )
    return "**CMV viral load (newest first):**\n\n" + "\n".join(rows) + more + note
