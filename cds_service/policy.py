"""Clinical policy: the choices the labels and guidelines leave open.

Every field is a local decision (marked **P** in the clinical reference), so each one is a
setting read from the environment with a documented default.  The facts and clinical layers
take a `Policy` as an argument and never read the environment themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

WEIGHT_POLICIES = ("actual", "ideal", "adjusted")


@dataclass(frozen=True)
class Policy:
    # Weight used in Cockcroft-Gault when height shows obesity (actual > obesity_ibw_ratio x IBW):
    # "actual", "ideal" (Devine) or "adjusted" (IBW + adjusted_weight_factor x (actual - IBW)).
    # Without a height, actual is used and the card says so.
    crcl_weight: str = "adjusted"
    # Weight used for mg/kg doses (ganciclovir, foscarnet, cidofovir) when height shows obesity.
    dosing_weight: str = "actual"
    # Actual/ideal body weight ratio above which a patient counts as obese.
    obesity_ibw_ratio: float = 1.2
    # Share of the weight above IBW that the adjusted weight keeps (0.4 is the common choice; no
    # label gives one): 0 gives ideal weight, 1 actual weight.
    adjusted_weight_factor: float = 0.4
    # An adult's weight below this (kg) is read as implausible (a child's record, a unit slip): no clearance
    # and no mg/kg dose from it, a missing-data card asking to confirm it.  No source gives a limit; 0 turns
    # the check off.
    adult_min_weight_kg: float = 25.0
    # Creatinine floor (mg/dL) applied before Cockcroft-Gault; 0 means no floor.
    creatinine_floor_mg_dl: float = 0.0
    # Staleness windows (days): an older value is "stale" and cannot drive a dosing decision.
    creatinine_max_age_days: int = 7
    weight_max_age_days: int = 30
    height_max_age_days: int = 3650
    blood_count_max_age_days: int = 7
    electrolyte_max_age_days: int = 7
    urine_protein_max_age_days: int = 2
    # Weekly CMV PCR is overdue after this many days without a result.
    viral_load_monitoring_days: int = 7
    # Undetectable weekly PCRs in a row that, with 2 weeks of treatment and clinical resolution, end a
    # course (the brief: "one or two consecutive weekly results"; two is the cautious reading).
    course_end_negative_pcr: int = 2
    # ... taken at least this many days apart: weekly draws drift by a day or two, and a repeat of the
    # same week's test is not a second weekly result.
    course_end_pcr_min_gap_days: int = 5
    # HSCT pre-emptive therapy: positive PCR results in a row, or positive pp65 tests, that trigger it.
    preemptive_consecutive_pcr: int = 2
    preemptive_pp65_positive: int = 1
    # A PCR result counts as "positive" at or above this level (IU/mL); 0 means any detected result.
    preemptive_viral_load_iu_ml: float = 0.0
    # The newest of those results must be at most this old (days) to start therapy: twice the weekly
    # interval, so one missed PCR still counts; older positives call for a new PCR, not treatment.
    preemptive_result_max_age_days: int = 14
    # HSCT monitoring window (days after transplant): standard and extended (chronic GVHD,
    # prolonged immunosuppression, T-cell depletion).
    hsct_monitoring_days: int = 100
    hsct_extended_monitoring_days: int = 365
    # Cidofovir orders on record are one course when each starts no more than this many days after the
    # one before it ended: the label's 2-week maintenance interval plus a week's grace for a dose held or
    # given late.  A longer gap starts a new course (its induction, and its creatinine baseline).
    cidofovir_course_gap_days: int = 21
    # Order safety: an ordered dose matches the label's renal band when it is within this fraction of
    # the band dose (or within one rounding step; see clinical/dose_tables.py).
    dose_tolerance_fraction: float = 0.10
    # Rounding of mg/kg doses, half up to the nearest step (no label gives a rounding rule).  Why these
    # defaults: ganciclovir band doses run from 0.625 mg/kg (a few tens of mg) to 5 mg/kg, so a 5 mg
    # step (error at most 2.5 mg) stays under 10% even for the smallest band dose of a 40 kg adult and
    # is well inside what a pharmacy measures; cidofovir (5 mg/kg) is rounded the same way; foscarnet
    # band doses are grams (40-120 mg/kg), and a 50 mg step (error at most 25 mg) is under 2% of any
    # band dose of an adult of 40 kg or more.  (Valganciclovir is dosed in whole tablets, as its
    # label says; letermovir and maribavir at the label's fixed doses.)
    ganciclovir_rounding_mg: float = 5.0
    cidofovir_rounding_mg: float = 5.0
    foscarnet_rounding_mg: float = 50.0
    # Lower limits for foscarnet's electrolyte check, used ONLY when a result carries neither the
    # lab's interpretation flag nor its reference range (the lab's own range always wins).  Local
    # policy defaults, in the canonical units of facts.model.ANALYTE_UNITS.
    potassium_low_mmol_l: float = 3.5
    magnesium_low_mg_dl: float = 1.7
    calcium_low_mg_dl: float = 8.5
    ionized_calcium_low_mmol_l: float = 1.12
    phosphate_low_mg_dl: float = 2.5
    # The same for cidofovir's neutropenia check (its label gives no number): the ANC (/uL) below which a result
    # with neither the lab's flag nor its range counts as low (the usual lower limit of the normal range).
    anc_low_per_ul: float = 1500.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Policy":
        """Read `CDS_POLICY_<FIELD>` variables (e.g. CDS_POLICY_CREATININE_FLOOR_MG_DL)."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = environ.get(f"CDS_POLICY_{field.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = type(field.default)
            try:
                values[field.name] = kind(raw)
            except ValueError as exc:
                raise ValueError(f"CDS_POLICY_{field.name.upper()}: {exc}") from None
        policy = cls(**values)
        for name in ("crcl_weight", "dosing_weight"):
            if getattr(policy, name) not in WEIGHT_POLICIES:
                raise ValueError(f"CDS_POLICY_{name.upper()} must be one of {', '.join(WEIGHT_POLICIES)}")
        if not 0 <= policy.adjusted_weight_factor <= 1:
            raise ValueError("CDS_POLICY_ADJUSTED_WEIGHT_FACTOR must be between 0 and 1")
        for drug in ROUNDED_DRUGS:
            if not policy.rounding_step_mg(drug) > 0:
                raise ValueError(f"CDS_POLICY_{drug.upper()}_ROUNDING_MG must be more than 0")
        return policy

    def rounding_step_mg(self, drug: str) -> float:
        """The step an mg/kg dose of `drug` is rounded to; 0 for drugs not dosed per kg."""
        return getattr(self, f"{drug}_rounding_mg") if drug in ROUNDED_DRUGS else 0.0


ROUNDED_DRUGS = ("ganciclovir", "cidofovir", "foscarnet")  # the drugs dosed in mg/kg
