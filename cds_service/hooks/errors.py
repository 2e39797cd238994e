"""Protocol errors and their OperationOutcome bodies (every 4xx/5xx body is one)."""

from __future__ import annotations


class ProtocolError(Exception):
    """A request the protocol layer refuses: `status` is the HTTP status, `code` the FHIR issue code."""

    def __init__(self, status: int, diagnostics: str, code: str = "invalid"):
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code

    def outcome(self) -> dict:
        return operation_outcome(self.diagnostics, self.code)


def operation_outcome(diagnostics: str | None, code: str = "invalid", severity: str = "error") -> dict:
    """An OperationOutcome with one issue; `diagnostics` None leaves it out (a bare 401 says nothing)."""
    issue = {"severity": severity, "code": code}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}
