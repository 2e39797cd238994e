"""Treatment guidance (placeholder until the guidance rules land)."""


def guidance(facts, policy, hook, targets):
    return []
