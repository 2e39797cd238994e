"""Documented CMV antiviral resistance: the genes named and the drugs named resistant, not one flag."""

from __future__ import annotations

import pytest
from facts_testkit import condition, facts


def conds(*conditions):
    return facts(conditions=list(conditions)).conditions


@pytest.mark.parametrize(
    "text, genes, drugs, ganciclovir",
    [
        ("Ganciclovir-resistant CMV infection (UL97 A594V mutation)", {"UL97"}, {"ganciclovir"}, True),
        ("UL54 mutation", {"UL54"}, set(), True),
        ("Valganciclovir resistance", set(), {"ganciclovir"}, True),  # the prodrug: ganciclovir resistance
        ("Foscarnet-resistant CMV", set(), {"foscarnet"}, False),
        ("Maribavir resistance", set(), {"maribavir"}, False),
        ("CMV resistant to cidofovir", set(), {"cidofovir"}, False),
        ("Letermovir resistance (UL56 mutation)", {"UL56"}, {"letermovir"}, False),
        ("UL89 substitution", {"UL89"}, set(), False),
        ("UL51 variant", {"UL51"}, set(), False),
        ("CMV UL56 C325Y", {"UL56"}, set(), False),
        ("Mutations in UL97 and UL54", {"UL97", "UL54"}, set(), True),
        ("UL97 and UL54 mutations", {"UL97", "UL54"}, set(), True),
        ("Resistant to ganciclovir and foscarnet", set(), {"ganciclovir", "foscarnet"}, True),
        ("Foscavir resistant CMV", set(), {"foscarnet"}, False),
        ("Vistide resistance", set(), {"cidofovir"}, False),
        ("Livtencity-resistant CMV", set(), {"maribavir"}, False),
        ("Prevymis resistance", set(), {"letermovir"}, False),
        # The record names the drug the mutation affects: no ganciclovir resistance is read into it.
        ("UL54 mutation conferring foscarnet resistance", {"UL54"}, {"foscarnet"}, False),
        ("Maribavir-resistant CMV (UL97 T409M mutation)", {"UL97"}, {"maribavir"}, False),
        # ... but a gene named with a drug it cannot affect still documents ganciclovir resistance.
        ("Foscarnet-resistant CMV; UL97 A594V mutation", {"UL97"}, {"foscarnet"}, True),
    ],
)
def test_genes_and_drugs_named_resistant(text, genes, drugs, ganciclovir):
    c = conds(condition(text))
    assert (c.resistance_genes, c.resistant_drugs, c.ganciclovir_resistance) == (genes, drugs, ganciclovir)


def test_the_evidence_shows_the_substitution_the_record_names():
    # The card asks to check the genotype report for "this mutation": the words shown must name it.
    c = conds(condition("Ganciclovir-resistant CMV infection (UL97 A594V mutation)"))
    [gene] = [e for e in c.evidence if e.label == "CMV UL97 resistance mutation"]
    assert gene.matched_by == "text 'resistant CMV infection (UL97 A594V'"


def test_a_gene_documented_alone_in_any_record_still_documents_ganciclovir_resistance():
    named = condition("Maribavir-resistant CMV (UL97 T409M mutation)")
    c = conds(named, condition("UL97 A594V mutation"))
    assert c.attributed_genes == frozenset() and c.resistant_to("ganciclovir") and c.resistant_to("maribavir")
    assert conds(named).attributed_genes == {"UL97"}


@pytest.mark.parametrize(
    "text",
    [
        "No foscarnet resistance",
        "Foscarnet resistance ruled out",
        "Possible maribavir resistance",
        "Suspected letermovir resistance",
        "Maribavir resistance testing pending",
        "Negative for UL56 mutation",
        "UL54 mutation not detected",
        "UL97 genotype: wild type",
        "CMV resistance testing (UL97/UL54) sent",
        "Resistant to ganciclovir and foscarnet susceptible",  # ganciclovir only
        "Ganciclovir resistant and foscarnet susceptible",
    ],
)
def test_negated_or_uncertain_resistance_establishes_nothing_new(text):
    c = conds(condition(text))
    assert c.resistance_genes == frozenset() and c.resistant_drugs <= {"ganciclovir"}


def test_a_negated_gene_next_to_a_documented_one():
    c = conds(condition("UL97 mutation not detected; UL54 mutation detected"))
    assert c.resistance_genes == {"UL54"}
    c = conds(condition("UL97 negative UL54 mutation"))
    assert c.resistance_genes == {"UL54"}


def test_evidence_says_what_was_matched():
    c = conds(condition("Foscarnet-resistant CMV, UL54 mutation", id="c1"))
    shown = {(e.label, e.source_id, e.matched_by) for e in c.evidence}
    assert shown == {
        ("foscarnet-resistant CMV", "Condition/c1", "text 'Foscarnet-resistant'"),
        ("CMV UL54 resistance mutation", "Condition/c1", "text 'UL54 mutation'"),
    }


def test_refuted_resistance_is_not_read():
    assert conds(condition("Foscarnet-resistant CMV", verification="refuted")).resistant_drugs == frozenset()
