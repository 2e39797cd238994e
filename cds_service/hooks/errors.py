"""Protocol errors and their OperationOutcome bodies (every 4xx/5xx body is one)."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the protocol layer refuses: `status` is the HTTP status, `code` the FHIR issue code."""

    def __init__(self, status: int, diagnostics: str, code: str = "invalid"):
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code


def operation_outcome(diagnostics: str, code: str = "invalid", severity: str = "error") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
