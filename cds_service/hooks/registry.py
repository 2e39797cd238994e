"""Services are declared once (id, hook, title, description, prefetch, handler); the protocol layer
serves whatever is declared, the way HAPI FHIR's @CdsService annotations declare services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

from cds_service.policy import Policy


@dataclass(frozen=True)
class HookCall:
    """A validated hook request with its prefetch resolved (sent, fetched, or known absent)."""

    service_id: str
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    # key -> resource/Bundle, or None for "no data" (sent as null, OperationOutcome, not fetchable)
    prefetch: Mapping[str, Any]
    unavailable: Mapping[str, str]  # key -> why its data could not be had
    policy: Policy
    now: datetime  # timezone-aware evaluation time


Handler = Callable[[HookCall], list[dict]]  # returns CDS Hooks cards (JSON-ready dicts)


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]
    handler: Handler
    # Context fields the hook requires, with their JSON type (str, list, dict).
    required_context: Mapping[str, type] = field(default_factory=dict)
    # Optional context fields checked for type when present.
    optional_context: Mapping[str, type] = field(default_factory=dict)
    # Prefetch keys without which the service cannot answer (412 when they cannot be had).
    required_prefetch: tuple[str, ...] = ("patient",)

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(self.prefetch),
        }
