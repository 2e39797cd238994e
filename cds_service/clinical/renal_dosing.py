"""Renal dosing: the label's dose band for a drug, phase and creatinine clearance.

INTERFACE (written by the lead; the order-safety helper implements it).  Both the order-safety checks
and the treatment guidance compute every dose through `renal_dose`, so one table serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cds_service.clinical.findings import Citation
from cds_service.facts.model import ClinicalFacts
from cds_service.policy import Policy

Phase = Literal["induction", "maintenance"]
# Foscarnet regimens (label): induction "60q8h" or "90q12h"; maintenance "90/day" or "120/day".
FoscarnetRegimen = Literal["60q8h", "90q12h", "90/day", "120/day"]


@dataclass(frozen=True)
class RenalDose:
    """The band's dose for this patient, with everything a card must show."""

    drug: str  # "ganciclovir", "valganciclovir", "foscarnet"
    phase: Phase
    regimen: str | None  # foscarnet regimen; None otherwise
    band: str  # "CrCl 25-49 mL/min", "CrCl > 1.0-1.4 mL/min/kg"
    route: Literal["iv", "oral"]
    dose_mg: float | None  # absolute dose per administration, rounded (None if not recommended)
    mg_per_kg: float | None  # band's mg/kg (IV drugs)
    interval_hours: float | None  # None for "3 times weekly after dialysis" style schedules
    schedule: str  # "every 12 h", "every 2 days", "twice weekly", "3 times weekly after dialysis"
    unit_count: float | None = None  # valganciclovir: tablets per dose
    unit_strength_mg: float | None = None  # valganciclovir: 450
    not_recommended: str | None = None  # why the label says not to use (e.g. CrCl < 10 tablets)
    calculation: str = ""  # "2.5 mg/kg x 70 kg = 175 mg (rounded to 175 mg)"
    inputs: tuple[str, ...] = ()  # lines: "Weight 70 kg (2026-11-20)", "Creatinine ...", "CrCl ..."
    source: Citation | None = None


@dataclass(frozen=True)
class CannotDose:
    """A renal dose cannot be computed: the missing/stale/implausible inputs, in words."""

    drug: str
    reasons: tuple[str, ...]  # e.g. ("no creatinine in the last 7 days", "weight missing")
    missing: tuple[str, ...] = ()  # items to order/record: "creatinine", "weight"


def renal_dose(
    drug: str,
    phase: Phase,
    facts: ClinicalFacts,
    policy: Policy,
    regimen: FoscarnetRegimen | None = None,
) -> RenalDose | CannotDose:
    raise NotImplementedError
