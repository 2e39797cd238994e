"""Cards from findings: one per distinct finding, ordered by urgency, CDS Hooks 2.0 shape."""

from __future__ import annotations

import uuid

import pytest
from card_testkit import PATIENT_ID, citation, empty_values, finding, sandbox_draft
from hypothesis import given
from hypothesis import strategies as st

from cds_service.cards import (
    OVERRIDE_REASON_SYSTEM,
    OVERRIDE_REASONS,
    TOPIC_DISPLAYS,
    TOPIC_SYSTEM,
    contract_problems,
    render_cards,
)
from cds_service.cards.render import fit_summary, prune, utf16_length
from cds_service.cards.vocabulary import DEFAULT_OVERRIDE_REASONS
from cds_service.clinical.findings import (
    TOPICS,
    ConsultProposal,
    DoseProposal,
    LabOrderProposal,
    StopOrderProposal,
)

DRAFT_ID = "MedicationRequest/request-123"


def test_no_findings_no_cards():
    assert render_cards([]) == []


def test_cards_are_ordered_critical_warning_info_and_stable_within_a_level():
    findings = [
        finding(indicator="info", summary="info A"),
        finding(indicator="warning", summary="warning A"),
        finding(indicator="critical", summary="critical A"),
        finding(indicator="info", summary="info B"),
        finding(indicator="critical", summary="critical B"),
        finding(indicator="warning", summary="warning B"),
    ]
    summaries = [card["summary"] for card in render_cards(findings)]
    assert summaries == ["critical A", "critical B", "warning A", "warning B", "info A", "info B"]


def test_same_dedup_key_gives_one_card_keeping_the_most_severe():
    findings = [
        finding(indicator="warning", key="hem|anc", summary="ANC low", detail="warning text"),
        finding(indicator="info", summary="something else"),
        finding(indicator="critical", key="hem|anc", summary="ANC 400/uL: do not give", detail="critical text"),
        finding(indicator="info", key="hem|anc", summary="ANC low (info)"),
    ]
    cards = render_cards(findings)
    assert [c["summary"] for c in cards] == ["ANC 400/uL: do not give", "something else"]
    assert cards[0]["indicator"] == "critical"
    assert cards[0]["detail"].startswith("critical text")


def test_duplicates_of_equal_severity_keep_the_first():
    first = finding(detail="first wording", order_id=DRAFT_ID)
    again = finding(detail="second wording", order_id=DRAFT_ID)  # same topic, order and summary
    other_order = finding(detail="other order", order_id="MedicationRequest/other")
    cards = render_cards([first, again, other_order])
    assert len(cards) == 2
    assert cards[0]["detail"].startswith("first wording")
    assert cards[1]["detail"].startswith("other order")


def test_card_has_the_cds_hooks_fields():
    (card,) = render_cards([finding()])
    assert uuid.UUID(card["uuid"]).version == 4
    assert card["indicator"] == "warning"
    assert card["summary"] == finding().summary
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert set(card) == {"uuid", "summary", "detail", "indicator", "source", "overrideReasons"}


def test_each_card_gets_its_own_uuid():
    cards = render_cards([finding(summary="a"), finding(summary="b")]) + render_cards([finding(summary="a")])
    assert len({c["uuid"] for c in cards}) == 3


def test_source_is_the_first_citation_with_the_topic_coding():
    (card,) = render_cards([finding(topic="nephrotoxicity", sources=(citation("cidofovir-label"), citation("kotton-2025")))])
    assert card["source"] == {
        "label": citation("cidofovir-label").label,
        "url": citation("cidofovir-label").url,
        "topic": {"system": TOPIC_SYSTEM, "code": "nephrotoxicity", "display": "Nephrotoxicity"},
    }


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_has_a_display_and_renders_its_coding(topic):
    (card,) = render_cards([finding(topic=topic)])
    assert card["source"]["topic"] == {"system": TOPIC_SYSTEM, "code": topic, "display": TOPIC_DISPLAYS[topic]}


def test_topic_displays_cover_exactly_the_published_topics():
    assert set(TOPIC_DISPLAYS) == set(TOPICS)
    assert len(set(TOPIC_DISPLAYS.values())) == len(TOPICS)  # displays tell topics apart


def test_detail_is_the_findings_markdown_then_every_source():
    sources = (citation("valganciclovir-label"), citation("kotton-2025"), citation("valganciclovir-label"))
    (card,) = render_cards([finding(detail="Inputs: CrCl 45 mL/min.", sources=sources)])
    body, sources_line = card["detail"].split("\n\n")
    assert body == "Inputs: CrCl 45 mL/min."
    assert sources_line == (
        f"**Sources:** [{sources[0].label}]({sources[0].url}); [{sources[1].label}]({sources[1].url})"
    )


def test_a_finding_without_sources_still_has_a_source_label():
    (card,) = render_cards([finding(sources=())])
    assert card["source"]["label"]
    assert "url" not in card["source"]
    assert card["detail"] == finding().detail
    assert "no source cited" in contract_problems(finding(sources=()))


# ---------------------------------------------------------------------------------------------
# Summary length


def test_long_summary_is_cut_at_a_word_boundary_with_an_ellipsis():
    words = "Foscarnet 90 mg/kg every 12 h with CrCl 0.45 mL/min/kg (creatinine 2.35 mg/dL on 2026-11-20, weight 61.5 kg)"
    summary = words + " exceeds the label band of 50 mg/kg every 24 h for CrCl 0.4-0.5 mL/min/kg"
    assert len(summary) >= 140
    (card,) = render_cards([finding(summary=summary)])
    cut = card["summary"]
    assert len(cut) < 140
    assert cut.endswith("…")
    kept = cut[:-1].split()
    assert kept == summary.split()[: len(kept)]  # whole words only: no number cut in half
    assert summary.startswith(cut[:-1])


def test_summary_length_is_counted_as_a_browser_counts_it():
    # Each emoji is two UTF-16 code units: 70 of them is 140 units although Python counts 70.
    summary = "CMV " + "\U0001F9EA " * 70
    result = fit_summary(summary)
    assert utf16_length(result) < 140
    assert result.endswith("…")


def test_a_summary_that_is_one_long_word_is_still_cut():
    result = fit_summary("x" * 300)
    assert result == "x" * 138 + "…"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=400))
def test_fitted_summaries_are_always_short_and_a_prefix_of_whole_words(summary):
    result = fit_summary(summary)
    assert utf16_length(result) < 140
    normalised = " ".join(summary.split())
    if result.endswith("…") and result != normalised:
        kept = result[:-1].rstrip()
        assert normalised.startswith(kept)
        if " " in normalised[:139]:
            assert kept.split() == normalised.split()[: len(kept.split())]
    else:
        assert result == normalised


def test_contract_flags_a_long_summary():
    problems = contract_problems(finding(summary="a " * 80))
    assert any("summary has 160 characters" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# Override reasons


def test_override_reasons_come_from_the_table_in_the_findings_order():
    f = finding(override_reasons=("dialysis-nephrology", "dose-confirmed-id-pharmacy", "dialysis-nephrology"))
    (card,) = render_cards([f])
    assert card["overrideReasons"] == [
        {"system": OVERRIDE_REASON_SYSTEM, "code": "dialysis-nephrology", "display": "On dialysis, dosed per nephrology"},
        {"system": OVERRIDE_REASON_SYSTEM, "code": "dose-confirmed-id-pharmacy", "display": "Dose confirmed with ID pharmacy"},
    ]


@pytest.mark.parametrize("indicator", ["info", "warning", "critical"])
def test_default_override_reasons_per_indicator(indicator):
    (card,) = render_cards([finding(indicator=indicator)])
    codes = [r["code"] for r in card["overrideReasons"]]
    assert codes == list(DEFAULT_OVERRIDE_REASONS[indicator])
    assert all(r["display"] == OVERRIDE_REASONS[r["code"]] for r in card["overrideReasons"])


def test_critical_defaults_differ_from_info_defaults():
    assert "benefit-outweighs-risk" in DEFAULT_OVERRIDE_REASONS["critical"]
    assert "benefit-outweighs-risk" not in DEFAULT_OVERRIDE_REASONS["info"]


def test_unknown_override_reason_is_left_out_and_reported():
    f = finding(override_reasons=("made-up", "lab-result-pending"))
    (card,) = render_cards([f])
    assert [r["code"] for r in card["overrideReasons"]] == ["lab-result-pending"]
    assert contract_problems(f) == ["override reason 'made-up' is not in OVERRIDE_REASONS"]


def test_only_unknown_override_reasons_fall_back_to_the_defaults():
    (card,) = render_cards([finding(indicator="critical", override_reasons=("made-up",))])
    assert [r["code"] for r in card["overrideReasons"]] == list(DEFAULT_OVERRIDE_REASONS["critical"])


# ---------------------------------------------------------------------------------------------
# Suggestions on the card

EVERY_PROPOSAL = (
    DoseProposal(
        label="Change to valganciclovir 450 mg every 24 h",
        drug="valganciclovir",
        dose_mg=450,
        interval_hours=24,
        route="oral",
        schedule="every 24 h",
        replaces=DRAFT_ID,
        unit_count=1,
        unit_strength_mg=450,
        note="take with food",
        recommended=True,
    ),
    DoseProposal("Switch to IV ganciclovir 175 mg every 12 h", "ganciclovir", 175, 12, "iv", "every 12 h"),
    LabOrderProposal("Order weekly CMV PCR", "cmv-pcr", recurrence="weekly"),
    ConsultProposal("Consult infectious diseases", "infectious-disease", "CMV colitis on treatment"),
    StopOrderProposal("Remove the valganciclovir draft", DRAFT_ID, "ganciclovir IV ordered instead"),
)


def test_suggestions_have_label_uuid_actions_and_recommendation_only_when_recommended():
    (card,) = render_cards([finding(proposals=EVERY_PROPOSAL)], {DRAFT_ID: sandbox_draft()}, PATIENT_ID)
    suggestions = card["suggestions"]
    assert [s["label"] for s in suggestions] == [p.label for p in EVERY_PROPOSAL]
    assert [s.get("isRecommended") for s in suggestions] == [True, None, None, None, None]
    assert len({uuid.UUID(s["uuid"]) for s in suggestions}) == len(EVERY_PROPOSAL)
    assert [[a["type"] for a in s["actions"]] for s in suggestions] == [
        ["update"], ["create"], ["create"], ["create"], ["delete"],
    ]
    assert all(a["description"] for s in suggestions for a in s["actions"])
    assert card["selectionBehavior"] == "at-most-one"


def test_selection_behavior_follows_the_finding():
    f = finding(proposals=EVERY_PROPOSAL[2:4], selection="any")
    (card,) = render_cards([f], patient_id=PATIENT_ID)
    assert card["selectionBehavior"] == "any"


def test_without_a_patient_id_create_suggestions_are_left_out():
    f = finding(proposals=(EVERY_PROPOSAL[2], EVERY_PROPOSAL[3]))
    (card,) = render_cards([f])
    assert "suggestions" not in card and "selectionBehavior" not in card
    (card,) = render_cards([finding(proposals=EVERY_PROPOSAL)], {DRAFT_ID: sandbox_draft()})
    assert [s["actions"][0]["type"] for s in card["suggestions"]] == ["update", "delete"]


def test_no_null_or_empty_value_anywhere():
    draft = sandbox_draft()
    draft["note"] = []  # clients send empties: they must not come back
    draft["reasonCode"] = None
    draft["dosageInstruction"][0]["text"] = ""
    draft["medicationCodeableConcept"]["extension"] = [{}]
    findings = [
        finding(proposals=EVERY_PROPOSAL, override_reasons=("lab-result-pending",)),
        finding(indicator="critical", summary="x" * 200, detail="", sources=()),
        finding(indicator="info", topic="cmv-status", proposals=EVERY_PROPOSAL[2:], selection="any"),
    ]
    for orders, patient in (({DRAFT_ID: draft}, PATIENT_ID), (None, None), ({}, "Patient/" + PATIENT_ID)):
        cards = render_cards(findings, orders, patient)
        assert cards and empty_values(cards) == []


def test_prune_drops_empties_at_any_depth_and_keeps_zero_and_false():
    value = {
        "a": None, "b": "", "c": [], "d": {}, "e": [None, "", {}, [[]]], "f": {"g": {"h": None}},
        "zero": 0, "no": False, "x": [0, False, "y", {"z": 0.0, "n": None}],
    }
    assert prune(value) == {"zero": 0, "no": False, "x": [0, False, "y", {"z": 0.0}]}
    assert prune([{"a": ""}, " "]) == [" "]


def test_a_sound_finding_has_no_contract_problems():
    assert contract_problems(finding(proposals=EVERY_PROPOSAL, override_reasons=("already-addressed",))) == []


def test_contract_problems_name_each_broken_part():
    bad = finding(
        topic="renal",
        indicator="urgent",
        summary=" ",
        selection="all",
        proposals=(
            DoseProposal("", "ganciclovir", 0, 12, "im", "every 12 h"),
            LabOrderProposal("Order it", "unobtanium", recurrence="hourly"),
            ConsultProposal("Consult", "astrology", "why not"),
        ),
    )
    problems = contract_problems(bad)
    for expected in (
        "topic 'renal'",
        "indicator 'urgent'",
        "summary is empty",
        "selection 'all'",
        "DoseProposal has no label",
        "route 'im'",
        "dose 0 mg",
        "test 'unobtanium'",
        "recurrence 'hourly'",
        "specialty 'astrology'",
    ):
        assert any(expected in p for p in problems), expected
    # Rendering copes: a card with a readable indicator and no unorderable dose suggestion.
    (card,) = render_cards([bad], patient_id=PATIENT_ID)
    assert card["indicator"] == "warning"
    assert card["summary"] == "Renal"
    assert [s["label"] for s in card["suggestions"]] == ["Order it", "Consult"]
    assert card["selectionBehavior"] == "at-most-one"
    assert empty_values(card) == []
