"""Terminology the facts layer reads: which codes mean which analyte, condition or drug.

Sources: the clinical reference, section 10 (LOINC with check digits verified there), plus codes
marked "not in the reference" below: standard LOINC codes for the same analyte in another specimen or
method, under LOINC's published names, so results sent under them are read.  Anything the reference
marks "?" (not verified) is either left out or accepted with a comment saying so (and README's "Codes
read" lists them); nothing here is a guess.

Local (non-standard) codes are read only through `LOCAL_CODE_MAP`, which is empty by default: a site
that sends e.g. its own creatinine code adds `("http://lab.example.org/codes", "CREA"): "creatinine"`.
"""

from __future__ import annotations

from typing import Mapping

LOINC = ("http://loinc.org", "urn:oid:2.16.840.1.113883.6.1")
SNOMED = ("http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.96")
ICD10 = (
    "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.90",
    # WHO ICD-10: the codes matched below mean the same there or do not exist there.
    "http://hl7.org/fhir/sid/icd-10",
    "urn:oid:2.16.840.1.113883.6.3",
)
RXNORM = ("http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88")
ATC = ("http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73")

# Observation targets beyond the lab analytes of model.ANALYTE_UNITS.
VIRAL_LOAD = "cmv_viral_load"  # also the DataQualityIssue item for CMV PCR results
PP65 = "cmv_pp65"  # also the DataQualityIssue item for pp65 antigenaemia results

# ---------------------------------------------------------------------------------------------
# LOINC per analyte

ANALYTE_LOINC: Mapping[str, tuple[str, ...]] = {
    "creatinine": (
        "2160-0",  # Creatinine [Mass/volume] in Serum or Plasma
        "14682-9",  # Creatinine [Moles/volume] in Serum or Plasma
        "38483-4",  # Creatinine [Mass/volume] in Blood (not in the reference)
    ),
    "crcl_reported": ("35591-7",),  # Creatinine renal clearance predicted by Cockcroft-Gault
    "egfr": (
        "98979-8",  # CKD-EPI 2021
        # not in the reference; eGFR is read, never dosed from (the labels use Cockcroft-Gault)
        "62238-1",  # CKD-EPI
        "33914-3",  # MDRD
        "48642-3",  # MDRD, non-black
        "48643-1",  # MDRD, black
    ),
    "anc": ("751-8", "26499-4"),  # Neutrophils [#/volume] in Blood (automated count; any method, not in the reference)
    # Leukocytes [#/volume] in Blood (automated count; any method).  UNVERIFIED ("?" in the
    # reference): read only to tell whether a CBC is current (monitoring), never against a limit.
    "wbc": ("6690-2", "26464-8"),
    "platelets": ("777-3", "26515-7"),
    "hemoglobin": ("718-7",),
    "potassium": ("2823-3", "6298-4"),  # serum/plasma; blood (not in the reference)
    "magnesium": ("19123-9", "2601-3"),  # mass; molar
    "calcium": ("17861-6", "2000-8"),  # total calcium, mass; molar
    "ionized_calcium": ("1994-3",),
    "phosphate": ("2777-1", "14879-1"),  # mass; molar
    "urine_protein": ("2888-6",),  # Protein [Mass/volume] in Urine
    "urine_protein_dipstick": ("5804-0",),  # Protein [Mass/volume] in Urine by Test strip
    "weight": ("29463-7", "3141-9"),  # Body weight; Body weight Measured (not in the reference)
    "height": ("8302-2", "8306-3"),  # Body height; Body height --lying (not in the reference)
}

# CMV DNA PCR: the scale each code's property implies (the reported unit still decides).
VIRAL_LOAD_LOINC: Mapping[str, str] = {
    "72493-0": "IU/mL",  # serum/plasma
    "100675-8": "IU/mL",  # blood
    "33006-8": "copies/mL",  # unspecified specimen
    "29604-6": "copies/mL",  # blood.  UNVERIFIED ("?" in the reference): accepted, kept on its own scale
}

# CMV pp65 antigen has no verified LOINC code (reference: "?"), so none is encoded.  pp65 results
# are recognised by the text "pp65" in Observation.code (text or a coding's display), unless those
# names test the immune response to it (T cells, ELISpot, IGRA, interferon, antibodies: labs.py), or
# by a site's own code added to LOCAL_CODE_MAP with the target PP65.

# (system, code) -> analyte key of model.ANALYTE_UNITS, VIRAL_LOAD or PP65.  Empty by default.
LOCAL_CODE_MAP: dict[tuple[str, str], str] = {}

OBSERVATION_LOINC_CODES: tuple[str, ...] = tuple(
    dict.fromkeys([*(c for codes in ANALYTE_LOINC.values() for c in codes), *VIRAL_LOAD_LOINC])
)


def observation_target(system: str | None, code: str | None) -> str | None:
    """What an Observation coding measures: an analyte key, VIRAL_LOAD or PP65; None if not read."""
    if not isinstance(system, str) or not isinstance(code, str):
        return None
    if system in LOINC:
        return _LOINC_INDEX.get(code)
    return LOCAL_CODE_MAP.get((system, code))


_LOINC_INDEX: dict[str, str] = {
    **{code: analyte for analyte, codes in ANALYTE_LOINC.items() for code in codes},
    **{code: VIRAL_LOAD for code in VIRAL_LOAD_LOINC},
}

# ---------------------------------------------------------------------------------------------
# Qualitative results (SNOMED CT qualifier values)

SNOMED_NOT_DETECTED = {"260415000", "260385009"}  # Not detected; Negative
SNOMED_DETECTED = {"260373001", "10828004"}  # Detected; Positive
SNOMED_INCONCLUSIVE = {"419984006"}

# ---------------------------------------------------------------------------------------------
# Routes (SNOMED CT)

SNOMED_ROUTES: Mapping[str, str] = {"47625008": "iv", "26643006": "oral"}
# Injections other than IV, read into MedicationOrder.route_text by these names: some drugs are
# for IV infusion only (ganciclovir's label: never intramuscular or subcutaneous).
SNOMED_OTHER_INJECTION_ROUTES: Mapping[str, str] = {"78421000": "intramuscular", "34206005": "subcutaneous"}

# ---------------------------------------------------------------------------------------------
# Drugs: RxNorm and ATC codes that identify an ingredient (names are matched too: see drugs.py)

RXNORM_DRUGS: Mapping[str, str] = {
    # ingredients (verified in the reference)
    "3008": "cyclosporine",
    "35302": "sirolimus",
    "42316": "tacrolimus",
    "68149": "mycophenolate",  # mycophenolate mofetil
    "7145": "mycophenolate",  # mycophenolic acid
    "1256": "azathioprine",
    "8698": "probenecid",
    "10831": "trimethoprim-sulfamethoxazole",
    # clinical drugs seen from real clients
    "313566": "valganciclovir",  # valganciclovir 450 MG Oral Tablet (CDS Hooks sandbox)
    # Not encoded: the ingredient codes the reference marks unverified (ganciclovir 4678,
    # valganciclovir 275891, ...): those orders are recognised by name.
}

ATC_DRUGS: Mapping[str, str] = {
    "J05AB06": "ganciclovir",
    "J05AB14": "valganciclovir",
    "J05AD01": "foscarnet",
    "J05AB12": "cidofovir",
    "J05AX18": "letermovir",
    # maribavir J05AX10 is unverified in the reference: recognised by name only.
}


def drug_code(system: str | None, code: str | None) -> str | None:
    if not isinstance(system, str) or not isinstance(code, str):
        return None
    if system in RXNORM:
        return RXNORM_DRUGS.get(code)
    if system in ATC:
        return ATC_DRUGS.get(code.upper())
    return None
