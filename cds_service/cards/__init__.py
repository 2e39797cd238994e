"""Cards layer: findings -> CDS Hooks cards with FHIR suggestion resources.

Public API:
    render_cards(findings, orders=None, patient_id=None, drafts=frozenset()) -> list[dict]
    contract_problems(finding) -> list[str]      for rule tests: what breaks the card contract
    TOPIC_SYSTEM, TOPIC_DISPLAYS                  source.topic vocabulary
    OVERRIDE_REASON_SYSTEM, OVERRIDE_REASONS      overrideReasons vocabulary (feedback reads it back)
"""

from cds_service.cards.render import contract_problems, render_cards
from cds_service.cards.vocabulary import (
    OVERRIDE_REASON_SYSTEM,
    OVERRIDE_REASONS,
    TOPIC_DISPLAYS,
    TOPIC_SYSTEM,
)

__all__ = [
    "OVERRIDE_REASONS",
    "OVERRIDE_REASON_SYSTEM",
    "TOPIC_DISPLAYS",
    "TOPIC_SYSTEM",
    "contract_problems",
    "render_cards",
]
