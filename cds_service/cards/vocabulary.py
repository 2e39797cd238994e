"""The codes a card carries: its topic (source.topic) and the reasons a clinician may give for
overriding it (overrideReasons).  Both are published vocabularies: integrators filter cards by topic
and the feedback endpoint receives override reasons back as {system, code}, so codes never change.
"""

from __future__ import annotations

from typing import Mapping

# Code systems we own (URNs, not URLs: nothing is served at them, and they never move).
TOPIC_SYSTEM = "urn:cmv-cds:card-topic"
OVERRIDE_REASON_SYSTEM = "urn:cmv-cds:override-reason"

# source.topic.display for every code in clinical.findings.TOPICS.
TOPIC_DISPLAYS: Mapping[str, str] = {
    "renal-dose-adjustment": "Renal dose adjustment",
    "label-dose": "Dose differs from the label",
    "hematologic-toxicity": "Hematologic toxicity",
    "nephrotoxicity": "Nephrotoxicity",
    "electrolyte-abnormality": "Electrolyte abnormality",
    "drug-interaction": "Drug interaction",
    "duplicate-therapy": "Duplicate anti-CMV therapy",
    "prophylaxis-not-treatment": "Prophylaxis agent is not CMV treatment",
    "label-indication": "Outside the label's indication",
    "administration-route": "Route of administration",
    "infusion-time": "Infusion time",
    "missing-data": "Missing or outdated data",
    "cmv-treatment-regimen": "CMV treatment regimen",
    "immunosuppression-reduction": "Immunosuppression reduction",
    "alternative-therapy": "Alternative anti-CMV therapy",
    "suspected-resistance": "Suspected refractory or resistant CMV",
    "cns-disease-combination": "CNS disease: combination therapy",
    "pneumonitis-ivig": "CMV pneumonitis: adjunctive IVIG",
    "hiv-retinitis": "HIV CMV retinitis",
    "ibd-cmv-colitis": "IBD with CMV colitis",
    "hsct-preemptive": "HSCT pre-emptive therapy and monitoring",
    "monitoring-plan": "Monitoring during CMV treatment",
    "treatment-duration": "CMV treatment duration",
    "cmv-status": "CMV status",
}

# overrideReasons: key (the Coding's code) -> display.  Findings name the keys that fit them.
OVERRIDE_REASONS: Mapping[str, str] = {
    "dose-confirmed-id-pharmacy": "Dose confirmed with ID pharmacy",
    "dialysis-nephrology": "On dialysis, dosed per nephrology",
    "benefit-outweighs-risk": "Benefit outweighs risk",
    "lab-result-pending": "Lab result pending",
    "newer-result-elsewhere": "Newer result available outside this record",
    "already-addressed": "Already addressed",
    "patient-specific-regimen": "Patient-specific regimen",
    "specialist-directed": "Directed by the ID or transplant team",
    "monitoring-arranged": "Monitoring already arranged",
    "interaction-managed": "Interaction known and managed",
    "prophylaxis-intended": "Prophylaxis intended, not treatment",
    "not-clinically-relevant": "Not clinically relevant",
}

# When a finding names no reasons: a short set that fits any card of that urgency.
DEFAULT_OVERRIDE_REASONS: Mapping[str, tuple[str, ...]] = {
    "critical": ("benefit-outweighs-risk", "specialist-directed", "already-addressed"),
    "warning": (
        "dose-confirmed-id-pharmacy",
        "patient-specific-regimen",
        "already-addressed",
        "not-clinically-relevant",
    ),
    "info": ("already-addressed", "not-clinically-relevant"),
}

# Card order: most urgent first.
SEVERITY: Mapping[str, int] = {"critical": 0, "warning": 1, "info": 2}
