"""README stays true to the code: every policy setting is documented with its default."""

from dataclasses import fields
from pathlib import Path

import pytest

from cds_service.policy import Policy

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", fields(Policy), ids=lambda f: f.name)
def test_every_policy_setting_is_documented_with_its_default(field):
    name = f"CDS_POLICY_{field.name.upper()}"
    row = next((line for line in README.splitlines() if line.startswith(f"| `{name}`")), None)
    assert row is not None, f"{name} is not in the README's policy table"
    default = field.default
    shown = f"`{default:g}`" if isinstance(default, float) and default else f"`{default}`"
    assert shown in row or (default == 0 and "`0`" in row), f"{name}: default {default} not shown in {row!r}"
