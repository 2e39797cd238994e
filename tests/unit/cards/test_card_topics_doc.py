"""The documented topic table matches the code (README section "Card topics")."""

from __future__ import annotations

import re
from pathlib import Path

from cds_service.cards import OVERRIDE_REASON_SYSTEM, TOPIC_DISPLAYS, TOPIC_SYSTEM
from cds_service.clinical.findings import TOPICS

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"


def card_topics_section() -> str:
    text = README.read_text(encoding="utf-8")
    assert "## Card topics" in text, "README has no 'Card topics' section"
    return text.split("## Card topics", 1)[1]


def test_topic_table_lists_every_topic_with_its_display():
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", card_topics_section(), re.MULTILINE)
    assert [code for code, *_ in rows] == list(TOPICS)
    for code, display, indicator, meaning in rows:
        assert display.strip() == TOPIC_DISPLAYS[code]
        assert set(re.split(r"[ /]+", indicator.strip())) <= {"info", "warning", "critical"}
        assert meaning.strip()


def test_code_systems_are_documented():
    section = card_topics_section()
    assert f"`{TOPIC_SYSTEM}`" in section
    assert f"`{OVERRIDE_REASON_SYSTEM}`" in section
