"""Order safety checks (placeholder until the order-safety rules land)."""


def check_orders(facts, policy, targets):
    return []
