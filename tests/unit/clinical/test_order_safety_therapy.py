"""check_orders(): drug interactions, duplicate therapy, prophylaxis is not treatment."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import (
    PROBENECID,
    check,
    conditions,
    day,
    doses,
    draft,
    make_facts,
    measurement,
    only,
    order,
    stops,
    topics,
)



# ---------------------------------------------------------------------------------------------
# Drug interactions


def test_maribavir_with_ganciclovir_antagonism():
    mbv = draft("maribavir", 400, 12)
    findings = check(make_facts(drafts=[mbv], meds=[order("ganciclovir", 350, 12)]))
    f = only(findings, "drug-interaction")
    assert f.indicator == "warning" and "antagonism" in f.summary
    assert "not recommended (US label) and contraindicated (EU label)" in f.detail
    # Keep one side: remove the maribavir draft, or discontinue the ganciclovir on record (the switch).
    assert [(s.label, s.order_id) for s in stops(f)] == [
        ("Remove the maribavir order", mbv.id), ("Discontinue the ganciclovir order", "MedicationRequest/ganciclovir-active")]
    assert f.selection == "at-most-one" and not any(s.recommended for s in stops(f))
    # Each stop names the other side of the pair as its reason.
    assert [s.reason for s in stops(f)] == ["antagonism with ganciclovir", "antagonism with maribavir"]
    assert "duplicate-therapy" not in topics(findings)  # one card for the pair


def test_valganciclovir_drafted_while_on_maribavir():
    vgc = draft("valganciclovir", 900, 12)
    f = only(check(make_facts(drafts=[vgc], meds=[order("maribavir", 400, 12)])), "drug-interaction")
    assert "Maribavir with valganciclovir" in f.summary and f.order_id == vgc.id


def test_both_drafted_reported_once():
    mbv = draft("maribavir", 400, 12, id="MedicationRequest/a")
    gcv = draft("ganciclovir", 350, 12, id="MedicationRequest/b")
    f = only(check(make_facts(drafts=[mbv, gcv])), "drug-interaction")
    assert {s.order_id for s in stops(f)} == {mbv.id, gcv.id}


@pytest.mark.parametrize(
    "partner",
    ["mycophenolate", "zidovudine", "trimethoprim-sulfamethoxazole", "dapsone", "pentamidine", "flucytosine"],
)
def test_marrow_toxic_partners_are_info(partner):
    gcv = draft("ganciclovir", 350, 12)
    f = only(check(make_facts(drafts=[gcv], meds=[order(partner, 500, 12)])), "drug-interaction")
    assert f.indicator == "info" and partner in f.summary and "blood count" in f.detail


def test_marrow_toxic_by_brand_name_text():
    vgc = draft("valganciclovir", 900, 12)
    cellcept = order(None, 1000, 12, drug_text="CellCept 500 mg tablet")
    f = only(check(make_facts(drafts=[vgc], meds=[cellcept])), "drug-interaction")
    assert "mycophenolate" in f.summary


def test_azathioprine_is_not_on_the_label_list():
    gcv = draft("ganciclovir", 350, 12)
    assert check(make_facts(drafts=[gcv], meds=[order("azathioprine", 100, 24)])) == []


def test_ganciclovir_with_imipenem_both_directions():
    gcv = draft("ganciclovir", 350, 12)
    f = only(check(make_facts(drafts=[gcv], meds=[order("imipenem-cilastatin", 500, 6)])), "drug-interaction")
    assert f.indicator == "warning" and "seizures" in f.summary
    imi = draft("imipenem-cilastatin", 500, 6)
    f = only(check(make_facts(drafts=[imi], meds=[order("ganciclovir", 350, 12)])), "drug-interaction")
    assert f.order_id == imi.id and "seizures" in f.summary


def test_letermovir_480_with_cyclosporine_proposes_240():
    ltv = draft("letermovir", 480, 24)
    findings = check(make_facts(drafts=[ltv], meds=[order("cyclosporine", 100, 12)]))
    f = only(findings, "drug-interaction")  # the levels info is part of this warning
    assert f.indicator == "warning" and "240 mg once daily" in f.summary
    (p,) = doses(f)
    assert (p.drug, p.dose_mg, p.interval_hours, p.route, p.replaces) == ("letermovir", 240, 24, "oral", ltv.id)


def test_letermovir_480_with_cyclosporine_and_sirolimus_keeps_the_sirolimus_levels_card():
    # The dose card covers cyclosporine's levels; sirolimus's stay said (letermovir raises them too, label).
    ltv = draft("letermovir", 480, 24)
    found = check(make_facts(drafts=[ltv], meds=[order("cyclosporine", 100, 12), order("sirolimus", 2, 24)]))
    summaries = sorted(f.summary for f in found if f.topic == "drug-interaction")
    assert summaries == ["Letermovir with cyclosporine: label dose 240 mg once daily",
                         "Letermovir with sirolimus: raises levels, monitor them"]


def test_letermovir_iv_keeps_its_route():
    ltv = draft("letermovir", 480, 24, route="iv")
    f = only(check(make_facts(drafts=[ltv], meds=[order("cyclosporine", 100, 12)])), "drug-interaction")
    assert doses(f)[0].route == "iv"


def test_letermovir_240_with_cyclosporine_only_monitors_levels():
    ltv = draft("letermovir", 240, 24)
    f = only(check(make_facts(drafts=[ltv], meds=[order("cyclosporine", 100, 12)])), "drug-interaction")
    assert f.indicator == "info" and "monitor" in f.summary and not doses(f)


def test_cyclosporine_drafted_while_on_letermovir_480():
    cya = draft("cyclosporine", 100, 12)
    ltv = order("letermovir", 480, 24)
    f = only(check(make_facts(drafts=[cya], meds=[ltv])), "drug-interaction")
    assert f.order_id == cya.id and doses(f)[0].replaces == ltv.id and doses(f)[0].dose_mg == 240


@pytest.mark.parametrize("drug,partner,expected", [
    ("letermovir", "tacrolimus", "info"),
    ("letermovir", "sirolimus", "info"),
    ("letermovir", "everolimus", None),  # not on letermovir's list
    ("maribavir", "everolimus", "info"),
    ("maribavir", "tacrolimus", "info"),
])
def test_immunosuppressant_levels(drug, partner, expected):
    d = draft(drug, 480 if drug == "letermovir" else 400, 24 if drug == "letermovir" else 12)
    findings = check(make_facts(drafts=[d], meds=[order(partner, 2, 12)]))
    assert [f.indicator for f in findings if f.topic == "drug-interaction"] == ([expected] if expected else [])


def test_letermovir_with_voriconazole_watches_its_effect():
    ltv = draft("letermovir", 480, 24)
    f = only(check(make_facts(drafts=[ltv], meds=[order("voriconazole", 200, 12)])), "drug-interaction")
    assert (f.indicator, f.order_id) == ("info", ltv.id)
    assert f.summary == "Letermovir with voriconazole: lowers voriconazole levels, watch its effect"
    assert "letermovir lowers voriconazole levels (label)" in f.detail and "reduced voriconazole effect" in f.detail
    assert [c.key for c in f.sources] == ["letermovir-label"] and not f.proposals


@pytest.mark.parametrize(
    "partner, agent, words",
    [
        (("voriconazole", 200, 12), ("letermovir", 480, 24), "lowers voriconazole levels"),
        (("probenecid", 1000, 24), ("ganciclovir", 350, 12), "raises ganciclovir exposure"),
    ],
)
def test_partner_drafted_while_on_the_agent(partner, agent, words):
    drafted = draft(*partner)
    f = only(check(make_facts(drafts=[drafted], meds=[order(*agent)])), "drug-interaction")
    assert f.order_id == drafted.id and words in f.summary


def test_voriconazole_alone_is_quiet():
    assert check(make_facts(drafts=[draft("voriconazole", 200, 12)])) == []


@pytest.mark.parametrize("drug,dose_mg", [("ganciclovir", 350), ("valganciclovir", 900)])
def test_probenecid_raises_ganciclovir_exposure(drug, dose_mg):
    d = draft(drug, dose_mg, 12)
    f = only(check(make_facts(drafts=[d], meds=[order("probenecid", 500, 12)])), "drug-interaction")
    assert (f.indicator, f.order_id) == ("info", d.id)
    assert f.summary == f"{drug.capitalize()} with probenecid: raises ganciclovir exposure, watch for toxicity"
    assert "probenecid raises ganciclovir exposure (ganciclovir label)" in f.detail
    assert "valganciclovir is converted to ganciclovir" in f.detail and "blood counts and creatinine" in f.detail
    assert [c.key for c in f.sources] == ["ganciclovir-label"]


def test_cidofovir_with_its_probenecid_is_no_interaction():
    cdv = draft("cidofovir", 350, 168)
    findings = check(make_facts(drafts=[cdv], meds=[order("probenecid", 2000, 24)]))
    assert "drug-interaction" not in topics(findings)


@pytest.mark.parametrize("inducer,dose_mg", [("carbamazepine", 800), ("phenytoin", 1200), ("phenobarbital", 1200)])
def test_maribavir_with_inducers_gets_the_label_dose(inducer, dose_mg):
    mbv = draft("maribavir", 400, 12)
    f = only(check(make_facts(drafts=[mbv], meds=[order(inducer, 200, 12)])), "drug-interaction")
    assert f.indicator == "warning"
    (p,) = doses(f)
    assert (p.dose_mg, p.interval_hours, p.replaces) == (dose_mg, 12, mbv.id)
    # already at the label's dose: quiet
    at_dose = draft("maribavir", dose_mg, 12)
    assert check(make_facts(drafts=[at_dose], meds=[order(inducer, 200, 12)])) == []


def test_maribavir_with_two_inducers_of_different_doses_proposes_no_dose():
    mbv = draft("maribavir", 400, 12)
    inducers = [order("carbamazepine", 200, 12), order("phenytoin", 100, 8, id="MedicationRequest/pht")]
    f = only(check(make_facts(drafts=[mbv], meds=inducers)), "drug-interaction")
    assert f.indicator == "warning" and not doses(f)
    assert "The label dose cannot be shown: the maribavir label gives a dose for each of carbamazepine and phenytoin" in f.detail


@pytest.mark.parametrize("inducer", ["rifampin", "rifabutin"])
def test_maribavir_with_strong_inducers_not_recommended(inducer):
    mbv = draft("maribavir", 400, 12)
    f = only(check(make_facts(drafts=[mbv], meds=[order(inducer, 600, 24)])), "drug-interaction")
    assert f.indicator == "warning" and "not recommended" in f.summary and stops(f)[0].order_id == mbv.id
    assert not doses(f)


def test_rifampin_drafted_while_on_maribavir():
    rif = draft("rifampin", 600, 24)
    f = only(check(make_facts(drafts=[rif], meds=[order("maribavir", 400, 12)])), "drug-interaction")
    assert f.order_id == rif.id and stops(f)[0].order_id == rif.id


# ---------------------------------------------------------------------------------------------
# Duplicate therapy


def test_valganciclovir_step_down_while_on_ganciclovir_is_a_switch():
    vgc = draft("valganciclovir", 900, 12)
    gcv = order("ganciclovir", 350, 12)
    f = only(check(make_facts(drafts=[vgc], meds=[gcv])), "duplicate-therapy")
    assert f.indicator == "info" and "stop ganciclovir when valganciclovir starts" in f.summary
    assert [s.order_id for s in stops(f)] == [gcv.id]


def test_sequential_orders_are_not_duplicates():
    vgc = draft("valganciclovir", 900, 12, start=day(-3))
    gcv = order("ganciclovir", 350, 12, end=day(-3))
    assert check(make_facts(drafts=[vgc], meds=[gcv])) == []


def test_both_step_down_drafts_at_once_reported_once():
    vgc = draft("valganciclovir", 900, 12, id="MedicationRequest/v")
    gcv = draft("ganciclovir", 350, 12, id="MedicationRequest/g")
    f = only(check(make_facts(drafts=[vgc, gcv])), "duplicate-therapy")
    assert stops(f)[0].order_id == gcv.id


@pytest.mark.parametrize("sites, populations, removed", [
    (("gi",), ("sot",), "valganciclovir"),  # CMV disease: IV ganciclovir first (clinical brief)
    (("retinitis",), ("hiv",), "ganciclovir"),  # HIV retinitis: the oral regimen
    ((), ("sot",), "ganciclovir"),  # viraemia: oral valganciclovir is the pre-emptive drug
])
def test_both_drafted_at_once_keep_the_drug_the_regimen_starts_with(sites, populations, removed):
    vgc = draft("valganciclovir", 900, 12, id="MedicationRequest/v")
    gcv = draft("ganciclovir", 350, 12, id="MedicationRequest/g")
    conds = conditions(populations=populations, sites=sites, infection=not sites, labels=("CMV",))
    f = only(check(make_facts(conds=conds, drafts=[vgc, gcv])), "duplicate-therapy")
    assert [s.order_id for s in stops(f)] == [{"valganciclovir": vgc.id, "ganciclovir": gcv.id}[removed]]
    assert f.indicator == "warning"  # signed together, both would be given
    if removed == "valganciclovir":
        assert f.summary.startswith("CMV disease: IV ganciclovir first") and "first 3-5 days" in f.detail
        # With an IV course on record, the valganciclovir draft is its step-down: no card removes the tablets.
        on_record = order("ganciclovir", 350, 12, id="MedicationRequest/g-on", start=day(4))
        found = check(make_facts(conds=conds, drafts=[vgc, gcv], meds=[on_record]))
        assert not any(s.order_id == vgc.id for f in found for s in stops(f))


def test_foscarnet_with_ganciclovir_is_duplicate_unless_cns_disease():
    fos = draft("foscarnet", 6300, 12)
    gcv = order("ganciclovir", 350, 12)
    f = only(check(make_facts(crcl=112, crcl_per_kg=1.6, drafts=[fos], meds=[gcv])), "duplicate-therapy")
    assert f.indicator == "warning" and "foscarnet and ganciclovir" in f.summary
    assert {s.order_id for s in stops(f)} == {fos.id, gcv.id}
    cns = conditions(sites=["cns"], labels=["CMV encephalitis"])
    assert "duplicate-therapy" not in topics(check(make_facts(crcl=112, crcl_per_kg=1.6, conds=cns, drafts=[fos], meds=[gcv])))
    # Nor beside valganciclovir: the foscarnet the CNS card adds to the course is not a duplicate of it.
    vgc = order("valganciclovir", 900, 12)
    assert "duplicate-therapy" not in topics(check(make_facts(crcl=112, crcl_per_kg=1.6, conds=cns, drafts=[fos], meds=[vgc])))


def test_treatment_replacing_letermovir_prophylaxis_is_info():
    gcv = draft("ganciclovir", 350, 12)
    ltv = order("letermovir", 480, 24)
    f = only(check(make_facts(drafts=[gcv], meds=[ltv])), "duplicate-therapy")
    assert f.indicator == "info" and stops(f)[0].order_id == ltv.id


def test_letermovir_beside_a_prophylaxis_dose_is_a_switch_of_prophylaxis_not_treatment():
    # No CMV infection or disease: valganciclovir once daily is prophylaxis, as letermovir is. The draft is taken
    # to replace the order on record, whichever way the switch goes; its stop is offered (info, not recommended).
    hsct = conditions(populations=["hsct"])
    vgc_draft, ltv = draft("valganciclovir", 900, 24), order("letermovir", 480, 24)
    f = only(check(make_facts(conds=hsct, drafts=[vgc_draft], meds=[ltv])), "duplicate-therapy")
    assert (f.indicator, f.summary) == (
        "info", "Valganciclovir prophylaxis in place of letermovir: stop the letermovir when the valganciclovir starts")
    assert [(s.order_id, s.recommended) for s in stops(f)] == [(ltv.id, False)] and "both are CMV prophylaxis" in f.detail
    ltv_draft, vgc = draft("letermovir", 480, 24), order("valganciclovir", 900, 24)
    f = only(check(make_facts(conds=hsct, drafts=[ltv_draft], meds=[vgc])), "duplicate-therapy")
    assert f.indicator == "info" and f.summary.startswith("Letermovir prophylaxis in place of valganciclovir")
    assert [s.order_id for s in stops(f)] == [vgc.id]
    # Both drafted: which to keep is the clinician's.
    f = only(check(make_facts(conds=hsct, drafts=[ltv_draft, vgc_draft])), "duplicate-therapy")
    assert f.summary in ("Two CMV prophylaxis agents drafted: letermovir and valganciclovir: give one",
                         "Two CMV prophylaxis agents drafted: valganciclovir and letermovir: give one") and stops(f) == []
    # Beside treatment on record, letermovir adds nothing to it: its draft is removed, the prevention dose not
    # stopped for it (one card, not two contradicting each other).
    iv = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-iv", route="iv")
    found = [f for f in check(make_facts(conds=hsct, drafts=[ltv_draft], meds=[iv, vgc])) if f.topic == "duplicate-therapy"]
    assert all(f.summary.startswith("Letermovir ordered while") for f in found)
    assert {s.order_id for f in found for s in stops(f)} == {ltv_draft.id}
    # A treatment dose beside letermovir is still treatment replacing prophylaxis.
    f = only(check(make_facts(conds=hsct, drafts=[draft("valganciclovir", 900, 12)], meds=[ltv])), "duplicate-therapy")
    assert f.summary == "Valganciclovir treatment replaces letermovir prophylaxis: stop letermovir"


def test_letermovir_added_to_active_treatment_is_a_warning():
    ltv = draft("letermovir", 480, 24)
    findings = check(make_facts(drafts=[ltv], meds=[order("valganciclovir", 900, 12)]))
    f = only(findings, "duplicate-therapy")
    assert f.indicator == "warning" and stops(f)[0].order_id == ltv.id


def test_second_order_of_the_same_drug():
    gcv = draft("ganciclovir", 350, 12, id="MedicationRequest/new")
    old = order("ganciclovir", 350, 12, id="MedicationRequest/old")
    f = only(check(make_facts(drafts=[gcv], meds=[old])), "duplicate-therapy")
    assert f.indicator == "warning" and f.summary.startswith("Second ganciclovir order")


def test_a_draft_of_the_same_drug_at_another_dose_is_a_dose_change():
    # The HIV retinitis step-down: maintenance drafted while induction is active.
    induction = order("valganciclovir", 900, 12, id="MedicationRequest/induction")
    maintenance = draft("valganciclovir", 900, 24, id="MedicationRequest/maintenance")
    f = only(check(make_facts(drafts=[maintenance], meds=[induction])), "duplicate-therapy")
    assert f.indicator == "info" and f.summary == "Valganciclovir dose change: stop the current valganciclovir order when this one starts"
    [stop] = stops(f)
    assert (stop.order_id, stop.recommended, stop.label) == (induction.id, False, "Discontinue the current valganciclovir order")
    # A draft whose dose cannot be read is not a dose change: the duplicate warning stands.
    unreadable = draft("valganciclovir", None, None, id="MedicationRequest/unreadable")
    f = only(check(make_facts(drafts=[unreadable], meds=[induction])), "duplicate-therapy")
    assert f.indicator == "warning"


def test_a_draft_whose_dose_another_card_corrects_is_no_dose_change():
    # Letermovir 240 mg with cyclosporine on record; a 480 mg draft: the interaction card corrects the
    # draft, so stopping the correct order on record is not offered as a dose change.
    current = order("letermovir", 240, 24, id="MedicationRequest/ltv-240")
    drafted = draft("letermovir", 480, 24, id="MedicationRequest/ltv-480")
    found = check(make_facts(drafts=[drafted], meds=[current, order("cyclosporine", 100, 12)]))
    assert any("label dose 240 mg" in f.summary for f in found if f.topic == "drug-interaction")
    dup = only(found, "duplicate-therapy")
    assert dup.indicator == "warning" and dup.summary.startswith("Second letermovir order")


def test_a_step_down_whose_dose_another_card_adjusts_stays_a_dose_change():
    # 400 mg q24h drafted while 350 mg q12h runs: the renal card makes it 350 mg q24h, still not the
    # order on record, so the draft is still a dose change (not "a second order").
    current = order("ganciclovir", 350, 12, id="MedicationRequest/gcv-q12")
    drafted = draft("ganciclovir", 400, 24, id="MedicationRequest/gcv-q24")
    found = check(make_facts(drafts=[drafted], meds=[current]))
    assert "renal-dose-adjustment" in topics(found)
    assert only(found, "duplicate-therapy").indicator == "info"


def test_ended_anti_cmv_orders_are_not_duplicates():
    gcv = draft("ganciclovir", 350, 12)
    old = order("foscarnet", 6300, 12, status="completed", end=day(20))
    assert check(make_facts(drafts=[gcv], meds=[old])) == []


def test_tacrolimus_ointment_is_not_systemic():
    ltv = draft("letermovir", 480, 24)
    ointment = order("tacrolimus", None, 12, None, drug_text="tacrolimus 0.1% ointment")
    assert check(make_facts(drafts=[ltv], meds=[ointment])) == []


def test_combination_product_is_read_by_its_ingredients():
    gcv = draft("ganciclovir", 350, 12)
    combivir = order("lamivudine/zidovudine", 1, 12, drug_text="Combivir tablet")
    f = only(check(make_facts(drafts=[gcv], meds=[combivir])), "drug-interaction")
    assert "zidovudine" in f.summary


# ---------------------------------------------------------------------------------------------
# Label doses of letermovir and maribavir (fixed: no renal band)


@pytest.mark.parametrize(
    "drug, dose, interval, route, summary, proposed",
    [
        ("letermovir", 960, 24, "oral",
         "Letermovir 960 mg q24h too high: the label dose is 480 mg once daily (2x the label's daily dose)", (480, 24)),
        ("letermovir", 240, 24, "iv",
         "Letermovir 240 mg q24h too low: the label dose is 480 mg once daily (50% of the label's daily dose)", (480, 24)),
        ("maribavir", 800, 12, "oral",
         "Maribavir 800 mg q12h too high: the label dose is 400 mg twice daily (2x the label's daily dose)", (400, 12)),
        ("maribavir", 800, 24, "oral",
         "Maribavir 800 mg q24h differs from the label: the label dose is 400 mg twice daily "
         "(same daily dose, different interval)", (400, 12)),
    ],
)
def test_a_fixed_dose_drug_off_its_label_dose_is_a_warning(drug, dose, interval, route, summary, proposed):
    d = draft(drug, dose, interval, route=route)
    f = only(check(make_facts(drafts=[d])), "label-dose")
    assert (f.indicator, f.order_id, f.summary) == ("warning", d.id, summary)
    (p,) = doses(f)
    assert (p.dose_mg, p.interval_hours, p.route, p.replaces) == (*proposed, route, d.id)  # the ordered route kept
    assert [c.key for c in f.sources] == [f"{drug}-label"]


@pytest.mark.parametrize("drug, dose, interval", [("letermovir", 480, 24), ("maribavir", 400, 12)])
def test_the_label_dose_of_a_fixed_dose_drug_is_quiet(drug, dose, interval):
    assert "label-dose" not in topics(check(make_facts(drafts=[draft(drug, dose, interval)])))


@pytest.mark.parametrize("drug, dose, partner", [("letermovir", 960, "cyclosporine"), ("maribavir", 400, "carbamazepine")])
def test_a_co_medication_that_changes_the_dose_leaves_it_to_the_interaction_card(drug, dose, partner):
    findings = check(make_facts(drafts=[draft(drug, dose, 24 if drug == "letermovir" else 12)], meds=[order(partner, 200, 12)]))
    assert "label-dose" not in topics(findings) and "drug-interaction" in topics(findings)


def test_a_fixed_dose_drug_with_an_unreadable_dose_cannot_be_checked():
    d = draft("maribavir", None, 12, problems=("dose unit 'puff' not a mass",))
    f = only(check(make_facts(drafts=[d])), "missing-data")
    assert "the ordered dose could not be read as mg or mg/kg" in f.detail and "label-dose" not in topics(check(make_facts(drafts=[d])))


# ---------------------------------------------------------------------------------------------
# Cidofovir's label dose (5 mg/kg weekly for 2 weeks, then every 2 weeks)


# Creatinine and urine protein within the label's 48 h, so only the dose is in question.
CIDOFOVIR_LABS = [measurement("creatinine", 0.9, 0.5), measurement("urine_protein_dipstick", 0, 0.5, reported="negative")]


@pytest.mark.parametrize(
    "dose, per_kg, interval, summary",
    [
        (None, 10, 168, "Cidofovir 10 mg/kg weekly too high for CrCl 100 mL/min: 350 mg (5 mg/kg) weekly (2x the band's daily dose)"),
        (700, None, 336, "Cidofovir 700 mg every 2 weeks too high for CrCl 100 mL/min: 350 mg (5 mg/kg) every 2 weeks "
                         "(2x the band's daily dose)"),
    ],
)
def test_cidofovir_off_its_label_dose_is_a_warning(dose, per_kg, interval, summary):
    d = draft("cidofovir", dose, interval, mg_per_kg=per_kg)
    f = only(check(make_facts(crcl=100, labs=WEEK_ONE_LABS, drafts=[d], meds=[WEEK_ONE])), "renal-dose-adjustment")
    assert f.summary == summary
    (p,) = doses(f)
    assert (p.dose_mg, p.interval_hours, p.replaces) == (350, interval, d.id)


# A course whose first dose was given a week ago (its creatinine before it steady): the next dose may be
# the second weekly one or, early, every 2 weeks.
WEEK_ONE = order("cidofovir", 350, 168, id="MedicationRequest/cdv-week-one", status="completed", start=day(7), end=day(7))
WEEK_ONE_LABS = [*CIDOFOVIR_LABS, measurement("creatinine", 0.9, 8)]


@pytest.mark.parametrize("interval", [168, 336])
def test_cidofovir_at_5_mg_per_kg_weekly_or_every_2_weeks_is_quiet(interval):
    assert check(make_facts(crcl=100, labs=WEEK_ONE_LABS, drafts=[draft("cidofovir", 350, interval), PROBENECID], meds=[WEEK_ONE])) == []


@pytest.mark.parametrize("before", [None, 25], ids=["no-cidofovir-on-record", "a-course-ended-25-days-ago"])
def test_a_first_cidofovir_dose_every_2_weeks_is_induction_first(before):
    # Label: 5 mg/kg once weekly for 2 weeks, then every 2 weeks.  A course's first dose at the
    # maintenance interval skips the induction (a course ended more than the 21-day gap ago is another).
    meds = [] if before is None else [order("cidofovir", 350, 336, status="completed", start=day(before + 28), end=day(before))]
    d = draft("cidofovir", 350, 336)
    f = only(check(make_facts(crcl=100, labs=CIDOFOVIR_LABS, drafts=[d, PROBENECID], meds=meds)), "renal-dose-adjustment")
    assert f.summary == ("Cidofovir 350 mg every 2 weeks too low for a course's first dose: 350 mg (5 mg/kg) weekly "
                         "(50% of the band's daily dose)")
    assert "induction: the first dose of a cidofovir course" in f.detail
    (p,) = doses(f)
    # The induction's two weekly doses, not an open-ended weekly order (maintenance is a new order).
    assert (p.dose_mg, p.interval_hours, p.replaces, p.duration_days) == (350, 168, d.id, 14)
    # The first dose weekly is the label's induction: quiet.
    assert check(make_facts(crcl=100, labs=CIDOFOVIR_LABS, drafts=[draft("cidofovir", 350, 168), PROBENECID], meds=meds)) == []


def test_a_weekly_cidofovir_draft_changed_to_its_band_dose_ends_with_the_induction():
    # 500 mg weekly at 70 kg: 350 mg weekly, bounded to the induction's days (maintenance every 2 weeks is a new
    # order), not an open-ended weekly order; a week into the course, the days of it left.
    d = draft("cidofovir", 500, 168)
    (p,) = doses(only(check(make_facts(crcl=100, labs=CIDOFOVIR_LABS, drafts=[d, PROBENECID])), "renal-dose-adjustment"))
    assert (p.dose_mg, p.interval_hours, p.duration_days, p.schedule) == (350, 168, 14, "once weekly for 2 weeks")
    f = only(check(make_facts(crcl=100, labs=WEEK_ONE_LABS, drafts=[d, PROBENECID], meds=[WEEK_ONE])), "renal-dose-adjustment")
    (p,) = doses(f)
    assert (p.dose_mg, p.duration_days, p.schedule) == (350, 7, "once weekly to day 14 of the course")
    [recommended] = [line for line in f.detail.split("\n") if line.startswith("**Recommended")]
    assert "for 2 weeks" not in recommended  # its calculation too


@pytest.mark.parametrize("on_record", [
    order("cidofovir", 350, 168, id="MedicationRequest/cdv-no-start"),  # active, start not on record
    order("cidofovir", 350, 168, id="MedicationRequest/cdv-ended", status="completed", end=day(5)),  # ended 5 days ago
], ids=["active-without-start", "ended-without-start"])
def test_a_cidofovir_course_on_record_without_dates_makes_no_first_dose(on_record):
    # The course (drugs.cidofovir_course) counts these orders: the draft continues it, whatever its day.
    d = draft("cidofovir", 350, 336)
    found = check(make_facts(crcl=100, labs=CIDOFOVIR_LABS, drafts=[d], meds=[on_record]))
    assert "first dose" not in " ".join(f.summary + f.detail for f in found)


def test_an_order_set_of_cidofovir_induction_then_maintenance_is_not_a_first_dose_every_2_weeks():
    weekly = draft("cidofovir", 350, 168, id="MedicationRequest/cdv-induction", start=day(0))
    then = draft("cidofovir", 350, 336, id="MedicationRequest/cdv-maintenance", start=day(-21))
    assert "renal-dose-adjustment" not in topics(check(make_facts(crcl=100, labs=CIDOFOVIR_LABS, drafts=[weekly, then])))


def test_cidofovir_after_a_creatinine_rise_of_03_gets_3_mg_per_kg_not_the_usual_dose():
    # 3 weeks into the course, creatinine 1.0 -> 1.35: the label's 3 mg/kg (nephrotoxicity card), so
    # neither the ordered 3 mg/kg nor 10 mg/kg gets a card proposing 5 mg/kg.
    course = order("cidofovir", 400, 336, start=day(21))
    labs = [*CIDOFOVIR_LABS[1:], measurement("creatinine", 1.35, 0.5), measurement("creatinine", 1.0, 22)]
    for d in (draft("cidofovir", 240, 336, mg_per_kg=3), draft("cidofovir", 800, 336, mg_per_kg=10)):
        findings = check(make_facts(age=40, weight_kg=80, labs=labs, drafts=[d, PROBENECID], meds=[course]))
        assert "renal-dose-adjustment" not in topics(findings)
    assert doses(only(findings, "nephrotoxicity"))[0].dose_mg == 240


def test_a_contraindicated_cidofovir_order_gets_no_dose_card_beside_the_critical_one():
    d = draft("cidofovir", None, 168, mg_per_kg=10)
    labs = [measurement("creatinine", 0.9, 0.5), measurement("urine_protein_dipstick", 2, 0.5, reported="2+")]
    findings = check(make_facts(crcl=100, labs=labs, drafts=[d]))
    assert only(findings, "nephrotoxicity").indicator == "critical"
    assert "renal-dose-adjustment" not in topics(findings)


def test_a_contraindicated_cidofovir_order_s_missing_data_card_does_not_say_how_to_give_it():
    # Creatinine 1.8 (> 1.5: contraindicated) and no urine protein: the missing-data card still asks for it,
    # without "if given" beside the card that says not to give it.
    d = draft("cidofovir", 350, 168)
    findings = check(make_facts(crcl=45, labs=[measurement("creatinine", 1.8, 0.5)], drafts=[d]))
    assert only(findings, "nephrotoxicity").indicator == "critical"
    assert "if given" not in only(findings, "missing-data").detail.lower()


def test_a_child_s_cidofovir_cards_give_no_adult_probenecid_amounts():
    d = draft("cidofovir", 350, 168)
    detail = " ".join(f.detail for f in check(make_facts(age=12, crcl=None, labs=CIDOFOVIR_LABS, drafts=[d])))
    assert "Probenecid before and after each infusion" in detail and "2 g" not in detail
    adult = " ".join(f.detail for f in check(make_facts(crcl=100, labs=CIDOFOVIR_LABS, drafts=[d])))
    assert "Probenecid 2 g orally 3 h before" in adult


def test_cidofovir_without_a_weight_says_its_dose_cannot_be_checked():
    d = draft("cidofovir", 350, 168)
    f = only(check(make_facts(crcl=100, weight_kg=None, labs=CIDOFOVIR_LABS, drafts=[d])), "missing-data")
    assert "weight" in f.summary and "renal dose" in f.detail


def test_a_valganciclovir_solution_order_is_re_dosed_in_mg_not_tablets():
    # 18 mL of 50 mg/mL twice daily at CrCl 50: 450 mg twice daily, with no tablet count or tablet instruction.
    solution = replace(draft("valganciclovir", 900, 12), dose_form="solution", drug_text="valganciclovir 50 MG/ML Oral Solution")
    f = only(check(make_facts(crcl=50, drafts=[solution])), "renal-dose-adjustment")
    (p,) = doses(f)
    assert (p.dose_mg, p.unit_count, p.note) == (450, None, "take with food") and "tablet" not in f.detail + p.label
    tablets = only(check(make_facts(crcl=50, drafts=[draft("valganciclovir", 900, 12)])), "renal-dose-adjustment")
    assert doses(tablets)[0].note == "take with food; do not break or crush tablets"
    # An IV solution of another drug keeps its mg/kg working (the solution reading is valganciclovir's, by mouth).
    iv = replace(draft("foscarnet", 6000, 8, route="iv"), dose_form="solution", drug_text="foscarnet 24 MG/ML Injectable Solution")
    f = only(check(make_facts(crcl=50, crcl_per_kg=0.71, drafts=[iv])), "renal-dose-adjustment")
    assert "mg/kg x 70 kg" in f.detail and "oral solution" not in f.detail
