"""Unit conversion per analyte, to the canonical unit of model.ANALYTE_UNITS.

Each analyte lists the units it accepts and the exact factor to its canonical unit; anything else is
"unit unknown" and the value is not used.  A quantity's code and its unit string (matched
case-insensitively: the units accepted here do not collide when case is ignored) must not name
different units, whatever the code's system: a conflict is "unit unknown" too.  A UCUM code is read
even when the unit string is not known (a display such as "milligrams per decilitre"); a code of
another or no system only when it is the only unit given.  Viral-load units are in labs.py (they are
scales, not conversions: IU/mL and copies/mL are never converted into each other), read by the same
rule (`read_unit`).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Mapping, NamedTuple

from cds_service.facts import fhir

_CELLS_PER_UL = {
    "/ul": 1.0,
    "/mm3": 1.0,
    "cells/ul": 1.0,
    "cells/mm3": 1.0,
    "10*3/ul": 1000.0,
    "10*3/mm3": 1000.0,
    "k/ul": 1000.0,
    "thou/ul": 1000.0,
    "10*9/l": 1000.0,  # 10^9/L = 10^3/uL
    "/l": 1e-6,
}

# analyte -> normalised unit -> factor to the canonical unit (canonical = value x factor)
CONVERSIONS: Mapping[str, Mapping[str, float]] = {
    "creatinine": {"mg/dl": 1.0, "umol/l": 1 / 88.4, "mmol/l": 1000 / 88.4, "mg/l": 0.1},
    "crcl_reported": {"ml/min": 1.0},
    "egfr": {"ml/min/1.73_m2": 1.0, "ml/min/1.73m2": 1.0, "ml/min/1.73m*2": 1.0},
    "anc": _CELLS_PER_UL,
    "wbc": _CELLS_PER_UL,
    "platelets": _CELLS_PER_UL,
    "hemoglobin": {"g/dl": 1.0, "g/l": 0.1, "mmol/l": 1.611},
    "potassium": {"mmol/l": 1.0, "meq/l": 1.0},
    "magnesium": {"mg/dl": 1.0, "mmol/l": 2.431, "meq/l": 1.2155},
    "calcium": {"mg/dl": 1.0, "mmol/l": 4.008, "meq/l": 2.004},
    "ionized_calcium": {"mmol/l": 1.0, "mg/dl": 1 / 4.008, "meq/l": 0.5},
    "phosphate": {"mg/dl": 1.0, "mmol/l": 3.097},
    "urine_protein": {"mg/dl": 1.0, "g/l": 100.0, "mg/l": 0.1},
    "weight": {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237},
    "height": {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": 2.54, "in": 2.54, "inch": 2.54, "inches": 2.54},
}

# Sanity limits in the canonical unit: outside them a value is a data-entry error, not physiology.
# They are deliberately wide (they reject 0 kg, 900 kg, a creatinine of 0, negative counts), so a
# real extreme value is never discarded.
PLAUSIBLE: Mapping[str, tuple[float, float]] = {
    "creatinine": (0.1, 40.0),
    "crcl_reported": (0.0, 400.0),
    "egfr": (0.0, 400.0),
    "anc": (0.0, 500_000.0),
    "wbc": (0.0, 1_000_000.0),
    "platelets": (0.0, 5_000_000.0),
    "hemoglobin": (1.0, 30.0),
    "potassium": (1.0, 12.0),
    "magnesium": (0.2, 20.0),
    "calcium": (2.0, 25.0),
    "ionized_calcium": (0.2, 5.0),
    "phosphate": (0.2, 25.0),
    "urine_protein": (0.0, 10_000.0),
    "urine_protein_dipstick": (0.0, 4.0),
    "weight": (1.0, 650.0),
    "height": (40.0, 275.0),
}


def at_step(value: float, step: Decimal, rounding: str) -> float:
    """`value` at a decimal step (0.1, 0.01), rounded as `rounding` says (decimal.ROUND_*).  Float noise
    goes first: 49.99999999999999 is 50, and 1.45 - 1.0 (0.44999999999999996) is 0.45."""
    return float(Decimal(repr(round(value, 9))).quantize(step, rounding=rounding))


@fhir.cached_by_text
def normalise_unit(unit: str) -> str:
    """'µmol/L' -> 'umol/l', 'x10^9/L' -> '10*9/l', '{cells}/uL' -> 'cells/ul'."""
    value = unit.strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")
    value = value.replace("{", "").replace("}", "").replace("^", "*")
    value = re.sub(r"^(?:x|×)?10(?:\*|e)(\d)", r"10*\1", value)
    return value


class UnitReading(NamedTuple):
    meaning: Any  # what the unit means to the reader (a factor, a scale); None: unknown or in conflict
    shown: str  # the unit as reported: the unit string, else the code
    conflict: bool  # the code and the unit string name different units


def shown_unit(quantity: Mapping[str, Any]) -> str:
    return fhir.text(_str(quantity.get("unit"))) or fhir.text(_str(quantity.get("code"))) or ""


# No unit, code or system is this long.  A longer text stands for itself by this name, which no
# table knows (an unknown unit: cannot check); cutting it instead could leave a known unit
# ("mg/dL" + spaces + junk).  Either way the caches below hold short keys only.
TOO_LONG = f"(a text of over {fhir.CACHED_TEXT_LENGTH:,} characters)"


def _str(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= fhir.CACHED_TEXT_LENGTH else TOO_LONG


def quantity_unit(quantity: Mapping[str, Any], meaning: Callable[[str], Any]) -> UnitReading:
    """`read_unit` on a Quantity (or any mapping with system, code and unit)."""
    return read_unit(_str(quantity.get("system")), _str(quantity.get("code")), _str(quantity.get("unit")), meaning)


def read_unit(system: str | None, code: str | None, unit: str | None, meaning: Callable[[str], Any]) -> UnitReading:
    """What a quantity's unit means, by `meaning` (a spelling -> its meaning, None when not known).

    The code and the unit string must agree when both are known, whatever the code's system (a
    conflict cannot be settled by guessing which one is right).  A UCUM code stands for the unit
    even when the unit string is not known; a code of another or no system only when no unit string
    is given, as it may be a local code rather than a unit.
    """
    code, unit = fhir.text(code), fhir.text(unit)
    shown = unit or code or ""
    by_code = meaning(code) if code else None
    by_unit = meaning(unit) if unit else None
    if by_code is not None and by_unit is not None and by_code != by_unit:
        return UnitReading(None, shown, True)
    if by_unit is not None:
        return UnitReading(by_unit, shown, False)
    if by_code is not None and (not unit or fhir.text(system) == fhir.UCUM):
        return UnitReading(by_code, shown, False)
    return UnitReading(None, shown, False)


def conversion_factor(analyte: str, quantity: Mapping[str, Any]) -> UnitReading:
    """The factor to the analyte's canonical unit (`meaning`); None when the unit is missing, unknown
    or in conflict with the code."""
    return _factor(analyte, _str(quantity.get("system")), _str(quantity.get("code")), _str(quantity.get("unit")))


@lru_cache(maxsize=1024)  # a record repeats a handful of unit spellings thousands of times
def _factor(analyte: str, system: str | None, code: str | None, unit: str | None) -> UnitReading:
    table = CONVERSIONS.get(analyte, {})
    return read_unit(system, code, unit, lambda spelling: table.get(normalise_unit(spelling)))


_ANY_VALUE = (-math.inf, math.inf)


def plausible(analyte: str, value: float) -> bool:
    low, high = PLAUSIBLE.get(analyte, _ANY_VALUE)
    return low <= value <= high


# ---------------------------------------------------------------------------------------------
# Urine protein dipstick: a grade 0 (negative), 0.5 (trace), 1-4 (1+ to 4+)

_GRADE_WORDS = (
    (re.compile(r"\b(?:negative|neg|nil|none|not detected)\b|^-$"), 0.0),
    (re.compile(r"\b(?:trace|trc)\b|\+/-|±"), 0.5),
    (re.compile(r"(?<![\d+])(?:4\s*\+|\+\+\+\+)"), 4.0),
    (re.compile(r"(?<![\d+])(?:3\s*\+|\+\+\+)(?!\+)"), 3.0),
    (re.compile(r"(?<![\d+])(?:2\s*\+|\+\+)(?!\+)"), 2.0),
    (re.compile(r"(?<![\d+])(?:1\s*\+|\+)(?!\+)"), 1.0),
)
_MG_DL = re.compile(r"(\d+(?:\.\d+)?)\s*(mg/dl|g/l|mg/l)\b")


# Reagent-strip pads, mg/dL -> grade: trace below 30, 30 = 1+, 100 = 2+, 300 = 3+, 1000 or more = 4+.
# The cidofovir label equates >= 100 mg/dL with >= 2+.
DIPSTICK_PADS_MG_DL = ((1000, 4.0), (300, 3.0), (100, 2.0), (30, 1.0))


def dipstick_grade_from_mg_dl(mg_dl: float) -> float:
    for threshold, grade in DIPSTICK_PADS_MG_DL:
        if mg_dl >= threshold:
            return grade
    return 0.5 if mg_dl > 0 else 0.0


def dipstick_grade_from_text(value: str) -> float | None:
    words = value.strip().lower()
    for pattern, grade in _GRADE_WORDS:
        if pattern.search(words):
            return grade
    match = _MG_DL.search(words)
    if match:
        factor = CONVERSIONS["urine_protein"][match.group(2)]
        return dipstick_grade_from_mg_dl(float(match.group(1)) * factor)
    return None
