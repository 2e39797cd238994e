"""Cards layer: findings -> CDS Hooks cards with FHIR suggestion resources.

Public API:
    render_cards(findings) -> list[dict]
"""


def render_cards(findings):  # placeholder until the cards layer lands
    return []
