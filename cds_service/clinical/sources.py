"""The sources cards cite: product labels, guidelines and the clinical brief.

Keys are used by the rules; label and URL are what the clinician sees.  The URLs are stable search
pages (DailyMed for US labels, PubMed for the literature) so they stay valid as labels are revised.
"""

from __future__ import annotations

from cds_service.clinical.findings import Citation
from cds_service.facts.model import ClinicalFacts

_DAILYMED = "https://dailymed.nlm.nih.gov/dailymed/search.cfm?labeltype=all&query="
_PUBMED = "https://pubmed.ncbi.nlm.nih.gov/?term="

SOURCES: dict[str, Citation] = {
    c.key: c
    for c in (
        Citation("ganciclovir-label", "Ganciclovir injection (Cytovene-IV) US prescribing information", _DAILYMED + "ganciclovir"),
        Citation("valganciclovir-label", "Valganciclovir (Valcyte) US prescribing information", _DAILYMED + "valganciclovir"),
        Citation("foscarnet-label", "Foscarnet (Foscavir) US prescribing information", _DAILYMED + "foscarnet"),
        Citation("cidofovir-label", "Cidofovir (Vistide) US prescribing information", _DAILYMED + "cidofovir"),
        Citation("letermovir-label", "Letermovir (Prevymis) US prescribing information", _DAILYMED + "letermovir"),
        Citation("maribavir-label", "Maribavir (Livtencity) US prescribing information", _DAILYMED + "maribavir"),
        Citation(
            "kotton-2025",
            "Kotton et al. 2025, international consensus guidelines on CMV in solid organ transplantation",
            _PUBMED + "Kotton+2025+cytomegalovirus+consensus+guidelines+solid+organ+transplant",
        ),
        Citation(
            "resistance-definitions",
            "Chemaly et al. 2019 (Clin Infect Dis), updated Ljungman et al. 2024: refractory and resistant CMV",
            _PUBMED + "Chemaly+2019+refractory+resistant+cytomegalovirus+definitions",
        ),
        Citation(
            "sot-valganciclovir-2008",
            "Valganciclovir as treatment for CMV disease in solid organ transplant recipients (Clin Infect Dis 2008)",
            _PUBMED + "Valganciclovir+as+treatment+for+cytomegalovirus+disease+in+solid+organ+transplant+recipients",
        ),
        Citation(
            "antiviral-treatment-2011",
            "Antiviral treatment of cytomegalovirus infection (Infect Disord Drug Targets 2011)",
            _PUBMED + "Antiviral+treatment+of+cytomegalovirus+infection+Infect+Disord+Drug+Targets+2011",
        ),
        Citation(
            "clinical-brief",
            "CMV treatment clinical brief (guideline overviews, 2025)",
            _PUBMED + "cytomegalovirus+treatment+immunocompromised+guideline+2025",
        ),
    )
}


def cite(*keys: str) -> tuple[Citation, ...]:
    """The sources of `keys`, each once, in the order first named."""
    return tuple(SOURCES[k] for k in dict.fromkeys(keys))


def sot_guideline(facts: ClinicalFacts) -> tuple[str, ...]:
    """Kotton 2025 is the solid-organ transplant guideline: cited, and its advice given, for SOT
    recipients only."""
    return ("kotton-2025",) if "sot" in facts.conditions.populations else ()
