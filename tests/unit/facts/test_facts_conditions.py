"""Conditions and allergies -> populations, CMV state, intolerance, resistance (codes and text)."""

from __future__ import annotations

import pytest
from facts_testkit import ICD10CM, SNOMED, condition, facts


def conds(*conditions, allergies=()):
    return facts(conditions=list(conditions), allergies=list(allergies)).conditions


@pytest.mark.parametrize(
    "code, organs",
    [
        ("Z94.0", {"kidney"}), ("Z94.1", {"heart"}), ("Z94.2", {"lung"}), ("Z94.4", {"liver"}),
        ("Z94.83", {"pancreas"}), ("T86.11", {"kidney"}), ("T86.41", {"liver"}), ("Z94.3", {"heart", "lung"}),
    ],
)
def test_solid_organ_transplant_codes(code, organs):
    c = conds(condition(codings=[(ICD10CM, code, None)]))
    assert c.populations == {"sot"} and c.transplant_organs == organs
    assert c.evidence[0].matched_by == f"ICD-10-CM {code}"


@pytest.mark.parametrize(
    "text, organs",
    [
        ("Kidney transplant", {"kidney"}),
        ("s/p renal transplant 2019", {"kidney"}),
        ("Orthotopic liver transplantation", {"liver"}),
        ("History of kidney transplant rejection", {"kidney"}),
        ("Simultaneous kidney-pancreas transplant", {"kidney", "pancreas"}),
        ("Bilateral lung transplant recipient", {"lung"}),
        ("Renal allograft dysfunction", {"kidney"}),
        ("Kidney transplant from a living donor", {"kidney"}),
    ],
)
def test_solid_organ_transplant_text(text, organs):
    c = conds(condition(text))
    assert "sot" in c.populations and c.transplant_organs == organs


@pytest.mark.parametrize(
    "text",
    [
        "Kidney transplant candidate",
        "Evaluation for liver transplant",
        "Awaiting heart transplant",
        "No history of kidney transplant",
        "Acute kidney injury after bone marrow transplant",  # not an organ transplant
        "Renal failure",
        "Living kidney donor",
    ],
)
def test_not_a_solid_organ_recipient(text):
    assert conds(condition(text)).transplant_organs == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "Allogeneic haematopoietic stem cell transplant (matched unrelated donor), CMV R+",
        "Bone marrow transplant",
        "HSCT 2026",
        "Allo-HSCT for AML",
        "Autologous peripheral blood stem cell transplantation",
        "Cord blood transplant",
    ],
)
def test_hsct_text(text):
    assert conds(condition(text)).populations == {"hsct"}


@pytest.mark.parametrize("code", ["Z94.81", "Z94.84"])
def test_hsct_codes_and_transplant_date(code):
    c = conds(
        condition(codings=[(ICD10CM, code, None)], onsetDateTime="2026-06-29"),
        condition(codings=[(ICD10CM, "T86.01", "Bone marrow transplant rejection")], onsetDateTime="2026-10-01"),
    )
    assert c.populations == {"hsct"}
    assert c.hsct_date.isoformat() == "2026-06-29"  # a complication's onset is not the transplant date


def test_hsct_date_is_the_onset_never_the_recorded_date():
    # recordedDate is when the entry was made, not the transplant (formerly read as its date).
    c = conds(condition("Stem cell transplant", recordedDate="2026-07-02T10:00:00Z"))
    assert c.populations == {"hsct"} and c.hsct_date is None
    c = conds(condition("Stem cell transplant", recordedDate="2026-07-02", onsetDateTime="2026-06-20"))
    assert c.hsct_date.isoformat() == "2026-06-20"


def test_evidence_is_listed_oldest_first_whatever_the_bundle_order():
    records = [condition("CMV colitis", id="colitis", onsetDateTime="2026-11-22"),
               condition("HIV infection", id="hiv"),
               condition("Kidney transplant", id="kidney", onsetDateTime="2024-09-12")]
    for bundle in (records, records[::-1]):
        assert [e.source_id for e in conds(*bundle).evidence] == ["Condition/kidney", "Condition/colitis", "Condition/hiv"]


@pytest.mark.parametrize(
    "cond",
    [
        condition(codings=[(ICD10CM, "B20", None)]),
        condition(codings=[(ICD10CM, "Z21", None)]),
        condition("HIV-1 infection"),
        condition("AIDS"),
        condition("Human immunodeficiency virus disease"),
    ],
)
def test_hiv(cond):
    assert conds(cond).populations == {"hiv"}


@pytest.mark.parametrize("text", ["HIV negative", "HIV screening", "HIV pre-exposure prophylaxis (PrEP)",
                                  "Hearing aids", "No HIV"])
def test_not_hiv(text):
    assert "hiv" not in conds(condition(text)).populations


@pytest.mark.parametrize(
    "cond, types",
    [
        (condition(codings=[(ICD10CM, "K50.90", None)]), {"crohns"}),
        (condition(codings=[(ICD10CM, "K51.011", None)]), {"ulcerative-colitis"}),
        (condition("Crohn's disease of ileum"), {"crohns"}),
        (condition("Ulcerative pancolitis; acute severe flare"), {"ulcerative-colitis"}),
        (condition("Inflammatory bowel disease"), set()),
    ],
)
def test_ibd(cond, types):
    c = conds(cond)
    assert c.populations == {"ibd"} and c.ibd_types == types


@pytest.mark.parametrize(
    "cond, chronic",
    [
        (condition(codings=[(ICD10CM, "D89.811", None)]), True),
        (condition(codings=[(ICD10CM, "D89.812", None)]), True),  # acute on chronic
        (condition(codings=[(ICD10CM, "D89.810", None)]), False),
        (condition("Chronic graft-versus-host disease of skin"), True),
        (condition("Chronic GVHD"), True),
        (condition("Acute GVHD grade II"), False),
    ],
)
def test_chronic_gvhd(cond, chronic):
    assert conds(cond).chronic_gvhd is chronic


@pytest.mark.parametrize("text, depleted", [
    ("Allogeneic HSCT, T-cell depleted graft", True),
    ("Allogeneic stem cell transplant (CD34-selected)", True),
    ("Allo-HSCT with ATG conditioning", True),
    ("HSCT, in vivo T-cell depletion with alemtuzumab", True),
    ("Allogeneic HSCT", False),
    ("Allogeneic HSCT, no T-cell depletion", False),
    ("Allogeneic HSCT, ATG not given", False),
    ("Allogeneic HSCT, T-cell depletion: none", False),
    ("Allogeneic HSCT, non-T-cell-depleted graft", False),
    ("Allogeneic HSCT, ATG-free conditioning", False),
])
def test_t_cell_depletion_as_the_transplant_record_says(text, depleted):
    # The HSCT monitoring window's extension to a year: the depleting drugs are given in conditioning, long
    # before the orders read at day 100, so the transplant's own record says it (evidence of that condition).
    evidence = conds(condition(text)).evidence
    assert any(e.label == "T-cell depletion" for e in evidence) is depleted


@pytest.mark.parametrize(
    "cond, kind",
    [
        (condition(codings=[(ICD10CM, "Z99.2", None)]), "dialysis"),  # dependence on renal dialysis
        (condition("ESRD on hemodialysis"), "dialysis"),
        (condition("End stage renal disease on haemodialysis three times weekly"), "dialysis"),
        (condition("Peritoneal dialysis"), "peritoneal"),
        (condition("ESRD on CAPD"), "peritoneal"),
        (condition("Dialysis dependent"), "dialysis"),
        (condition("AKI on CVVHDF"), "crrt"),
        (condition("Continuous renal replacement therapy"), "crrt"),
        (condition("continuous veno-venous hemodiafiltration"), "crrt"),
        (condition("CKD stage 4, pre-dialysis"), None),
        (condition("History of dialysis"), None),
        (condition("Dialysis discontinued"), None),
        (condition("Not on dialysis"), None),
        (condition("CKD 5 - dialysis planned"), None),
        (condition("Kidney transplant, previously on dialysis"), None),
        (condition("ESRD on hemodialysis", clinical="resolved"), None),
    ],
)
def test_renal_replacement_therapy(cond, kind):
    c = conds(cond)
    assert c.renal_replacement == kind
    if kind:
        labels = {"dialysis": "dialysis", "peritoneal": "peritoneal dialysis", "crrt": "continuous renal replacement therapy"}
        assert [e.label for e in c.evidence if e.label == labels[kind]] == [labels[kind]]


def test_crrt_outranks_intermittent_dialysis():
    assert conds(condition("ESRD on hemodialysis"), condition("CRRT")).renal_replacement == "crrt"


def test_peritoneal_dialysis_outranks_a_dialysis_code():
    # Z99.2 says dialysis, not which; the text says peritoneal.  An eye's "relative APD" is no dialysis.
    coded = condition("ESRD on peritoneal dialysis", codings=[(ICD10CM, "Z99.2", None)])
    assert conds(coded).renal_replacement == "peritoneal"
    assert conds(condition("Relative APD, left eye")).renal_replacement is None


@pytest.mark.parametrize(
    "cond, sites",
    [
        (condition(codings=[(ICD10CM, "B25.0", None)]), {"pneumonitis"}),
        (condition(codings=[(ICD10CM, "B25.1", None)]), {"hepatitis"}),
        (condition(codings=[(ICD10CM, "B25.2", None)]), {"other"}),
        (condition(codings=[(ICD10CM, "B25.8", None)]), {"other"}),
        (condition(codings=[(ICD10CM, "B25.8", None), (ICD10CM, "H32", None)]), {"retinitis"}),
        (condition("CMV colitis", codings=[(ICD10CM, "B25.8", "Other cytomegaloviral diseases")]), {"gi"}),
        (condition(codings=[(SNOMED, "22455005", "Cytomegaloviral retinitis")]), {"retinitis"}),
        (condition(codings=[(SNOMED, "7678002", None)]), {"pneumonitis"}),
        (condition("Cytomegalovirus colitis"), {"gi"}),
        (condition("CMV enteritis"), {"gi"}),
        (condition("CMV esophagitis"), {"gi"}),
        (condition("Gastritis due to CMV"), {"gi"}),
        (condition("CMV pneumonitis"), {"pneumonitis"}),
        (condition("Cytomegaloviral pneumonia"), {"pneumonitis"}),
        (condition("CMV retinitis, right eye (zone 1)"), {"retinitis"}),
        (condition("CMV encephalitis"), {"cns"}),
        (condition("Cytomegalovirus myelitis"), {"cns"}),
        (condition("CMV hepatitis"), {"hepatitis"}),
        (condition("CMV end-organ disease"), {"other"}),
    ],
)
def test_cmv_disease_sites(cond, sites):
    c = conds(cond)
    assert c.cmv_disease_sites == sites and c.cmv_disease


def test_b25_8_with_h32_on_a_separate_condition_is_retinitis():
    c = conds(condition(codings=[(ICD10CM, "B25.8", None)]),
              condition(codings=[(ICD10CM, "H32", "Chorioretinal disorder")]))
    assert c.cmv_disease_sites == {"retinitis"}
    assert [e.label for e in c.evidence] == ["CMV retinitis"]


@pytest.mark.parametrize(
    "cond",
    [
        condition(codings=[(ICD10CM, "B25.9", "Cytomegaloviral disease, unspecified")]),
        condition(codings=[(SNOMED, "28944009", "Cytomegalovirus infection")]),
        condition("CMV viremia"),
        condition("CMV viraemia, no end-organ disease"),
        condition("CMV DNAemia"),
        condition("Cytomegalovirus infection"),
        condition("CMV reactivation"),
    ],
)
def test_cmv_infection_without_disease(cond):
    c = conds(cond)
    assert c.cmv_infection and not c.cmv_disease


@pytest.mark.parametrize(
    "text",
    [
        "No CMV",
        "CMV negative",
        "CMV IgG positive",
        "CMV D+/R-",
        "CMV colitis ruled out",
        "Rule out CMV colitis",
        "No evidence of CMV pneumonitis",
        "Suspected CMV colitis",
        "History of CMV retinitis",
        "CMV colitis, resolved",
        "Colitis, CMV negative",
        "CMV prophylaxis",
        "CMV PCR not detected",
    ],
)
def test_negated_uncertain_or_past_cmv_mentions_establish_nothing(text):
    c = conds(condition(text))
    assert c.cmv_disease_sites == frozenset() and not c.cmv_infection


def test_site_words_must_belong_to_cmv():
    c = conds(condition("CMV viremia in a patient with ulcerative colitis"))
    assert c.cmv_infection and c.cmv_disease_sites == frozenset()
    assert c.ibd_types == {"ulcerative-colitis"}


@pytest.mark.parametrize(
    "clinical, verification, extra, counted",
    [
        ("active", None, {}, True),
        ("recurrence", None, {}, True),
        ("resolved", None, {}, False),
        ("inactive", None, {}, False),
        ("active", "refuted", {}, False),
        ("active", "entered-in-error", {}, False),
        ("active", "provisional", {}, False),  # not confirmed
        ("active", "confirmed", {}, True),
        (None, None, {}, True),  # no clinical status: active unless abated
        (None, None, {"abatementDateTime": "2026-10-01"}, False),
        (None, None, {"abatementBoolean": False}, True),
        ("active", None, {"verificationStatus": "refuted"}, False),  # DSTU2 string
        ({"not": "a concept"}, None, {}, False),  # a status that cannot be read is not "active"
    ],
)
def test_condition_status(clinical, verification, extra, counted):
    c = conds(condition("CMV colitis", clinical=clinical, verification=verification, **extra))
    assert (c.cmv_disease_sites == {"gi"}) is counted


def test_dstu2_string_clinical_status():
    assert conds(condition("CMV colitis", clinical=None, clinicalStatus="resolved")).cmv_disease_sites == frozenset()
    assert conds(condition("CMV colitis", clinical=None, clinicalStatus="active")).cmv_disease_sites == {"gi"}


def test_evidence_row_for_every_match():
    c = conds(condition("CMV pneumonitis", codings=[(ICD10CM, "B25.0", "Cytomegaloviral pneumonitis")],
                        id="c7", onsetDateTime="2026-11-20"))
    assert {(e.label, e.source_id, e.matched_by) for e in c.evidence} == {
        ("CMV pneumonitis", "Condition/c7", "ICD-10-CM B25.0"),
        ("CMV pneumonitis", "Condition/c7", "text 'CMV pneumonitis'"),
    }
    assert all(e.onset.isoformat() == "2026-11-20" for e in c.evidence)


def test_display_of_a_recognised_code_is_not_matched_as_text():
    # B25.9's display says "disease", but the code means infection without end-organ disease.
    c = conds(condition(codings=[(ICD10CM, "B25.9", "Cytomegaloviral disease, unspecified")]))
    assert c.cmv_infection and c.cmv_disease_sites == frozenset()


# ---------------------------------------------------------------------------------------------
# Intolerance and resistance


def allergy(name, **extra):
    return {"resourceType": "AllergyIntolerance", "id": "a1", "code": {"text": name}, **extra}


@pytest.mark.parametrize(
    "resource, expected",
    [
        (allergy("Ganciclovir"), True),
        (allergy("valganciclovir hydrochloride"), True),
        (allergy("Valcyte"), True),
        (allergy("Penicillin"), False),
        (allergy("Ganciclovir", verificationStatus={"coding": [{"code": "refuted"}]}), False),
        (allergy("Ganciclovir", clinicalStatus={"coding": [{"code": "resolved"}]}), False),
        ({"resourceType": "AllergyIntolerance", "id": "a2", "substance": {"text": "ganciclovir"},
          "status": "confirmed"}, True),  # DSTU2
        ({"resourceType": "AllergyIntolerance", "id": "a3", "substance": {"text": "ganciclovir"},
          "status": "entered-in-error"}, False),
    ],
)
def test_ganciclovir_intolerance_from_allergies(resource, expected):
    c = conds(allergies=[resource])
    assert c.ganciclovir_intolerance is expected
    if expected:
        assert c.evidence[0].label.startswith("ganciclovir") and c.evidence[0].source_id.startswith("Allergy")


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.mark.parametrize(
    "resource, expected, matched_by",
    [
        (allergy("Probenecid"), {"probenecid"}, "allergy/intolerance 'Probenecid'"),
        (allergy("Sulfa drugs"), {"sulfa"}, "allergy/intolerance 'Sulfa drugs'"),
        (allergy("Sulfonamide antibiotics"), {"sulfa"}, "allergy/intolerance 'Sulfonamide antibiotics'"),
        (allergy("Bactrim DS"), {"sulfa"}, "allergy/intolerance 'Bactrim DS'"),
        ({"resourceType": "AllergyIntolerance", "id": "a1", "code": {"coding": [{"system": RXNORM, "code": "8698"}]}},
         {"probenecid"}, "allergy/intolerance coded RxNorm 8698"),
        ({"resourceType": "AllergyIntolerance", "id": "a1", "code": {"coding": [{"system": RXNORM, "code": "10831"}]}},
         {"sulfa"}, "allergy/intolerance coded RxNorm 10831"),
        (allergy("No sulfa allergy"), set(), None),
        (allergy("Sulfa", verificationStatus={"coding": [{"code": "refuted"}]}), set(), None),
        (allergy("Penicillin"), set(), None),
    ],
)
def test_allergies_the_cidofovir_label_names(resource, expected, matched_by):
    c = conds(allergies=[resource])
    assert c.allergies == expected and not c.ganciclovir_intolerance
    assert [(e.label, e.source_id, e.matched_by) for e in c.evidence] == (
        [(f"{next(iter(expected))} allergy", "AllergyIntolerance/a1", matched_by)] if expected else []
    )


def test_one_allergy_record_can_name_several_allergens():
    c = conds(allergies=[allergy("ganciclovir; probenecid")])
    assert c.ganciclovir_intolerance and c.allergies == {"probenecid"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Ganciclovir-induced neutropenia", True),
        ("Intolerance to valganciclovir", True),
        ("History of ganciclovir intolerance", True),  # still relevant
        ("Ganciclovir-resistant CMV infection", False),
    ],
)
def test_ganciclovir_intolerance_from_conditions(text, expected):
    assert conds(condition(text)).ganciclovir_intolerance is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Ganciclovir-resistant CMV infection (UL97 A594V mutation)", True),
        ("CMV UL97 mutation detected", True),
        ("UL54 mutation", True),
        ("Resistance to ganciclovir", True),
        ("No UL97 mutation", False),
        ("UL97 genotype: wild type", False),
        ("CMV infection", False),
    ],
)
def test_ganciclovir_resistance(text, expected):
    assert conds(condition(text)).ganciclovir_resistance is expected


def test_unreadable_conditions_are_skipped_and_counted():
    f = facts(conditions=[{"resourceType": "Condition", "id": "x"}, "junk", condition("CMV colitis")])
    assert f.conditions.cmv_disease_sites == {"gi"} and f.skipped_resources == 2


def test_evidence_from_a_code_the_reference_marks_unverified_says_so():
    (pneumonitis,) = [e for e in conds(condition(codings=[(SNOMED, "7678002", None)])).evidence if e.label == "CMV pneumonitis"]
    assert pneumonitis.matched_by == "SNOMED CT 7678002 (a code the clinical reference marks unverified)"
    (retinitis,) = [e for e in conds(condition(codings=[(SNOMED, "22455005", None)])).evidence if e.label == "CMV retinitis"]
    assert retinitis.matched_by == "SNOMED CT 22455005"


@pytest.mark.parametrize(
    "text, resistant",
    [
        ("Ulcerative pancolitis; acute severe flare, not responding to IV steroids", True),
        ("Acute severe ulcerative colitis, steroid-refractory", True),
        ("ASUC refractory to IV corticosteroids", True),
        ("Fulminant ulcerative colitis, failed to respond to steroids", True),
        ("UC with severe flare, steroid-resistant", True),
        ("Acute severe ulcerative colitis", False),  # steroids not said to fail
        ("Ulcerative colitis, steroid-refractory", False),  # no acute severe flare
        ("Ulcerative colitis, mild, not acute severe, steroid-refractory", False),
        ("Ulcerative colitis in remission; no acute severe flare; steroid-resistant", False),
        ("UC, previous acute severe episode 2019, steroid-resistant", False),
        ("Ulcerative colitis, moderate to severe flare, steroid-resistant", False),
        ("UC (uncomplicated); acute severe asthma, steroid-resistant", False),
        ("History of acute severe ulcerative colitis, steroid-refractory", False),
        ("Severe Crohn's disease, steroid-refractory", False),
        ("Ulcerative colitis; GVHD severe flare, steroid-refractory", False),
        ("Ulcerative colitis; asthma, acute severe exacerbation, steroid-resistant", False),
        ("ASUC, no response to IV steroids", True),
        ("ASUC, failure of IV corticosteroids", True),
        ("ASUC, hydrocortisone non-response", True),
    ],
)
def test_steroid_resistant_acute_severe_ulcerative_colitis(text, resistant):
    c = conds(condition(text))
    assert c.steroid_resistant_asuc is resistant


def test_the_flare_and_the_steroid_failure_may_be_two_conditions_about_the_uc():
    flare = condition("Acute severe ulcerative colitis")
    assert conds(flare, condition("Steroid-refractory ulcerative colitis")).steroid_resistant_asuc
    assert not conds(flare, condition("Steroid-refractory GVHD")).steroid_resistant_asuc
    assert conds(flare).acute_severe_uc and not conds(flare).steroid_resistant_asuc


def test_a_transplant_complication_is_the_organ_but_labelled_a_complication():
    c = conds(condition(codings=[(ICD10CM, "T86.11", "Kidney transplant rejection")], onsetDateTime="2026-11-01"))
    assert c.transplant_organs == {"kidney"} and [e.label for e in c.evidence] == ["kidney transplant complication"]
    assert c.transplant_dates == {}  # the rejection's onset is not the transplant's date


def test_a_transplant_s_date_is_the_newest_onset_of_its_transplant_conditions():
    c = conds(
        condition(codings=[(ICD10CM, "Z94.0", "Kidney transplant status")], onsetDateTime="2019-03-02"),
        condition(codings=[(ICD10CM, "Z94.0", "Kidney transplant status")], onsetDateTime="2026-02-10"),  # a second
        condition(codings=[(ICD10CM, "T86.11", "Kidney transplant rejection")], onsetDateTime="2026-11-01"),
        condition(codings=[(ICD10CM, "Z94.4", "Liver transplant status")]),  # no onset: no date
    )
    assert c.transplant_organs == {"kidney", "liver"}
    assert {organ: d.isoformat() for organ, d in c.transplant_dates.items()} == {"kidney": "2026-02-10"}


# ---------------------------------------------------------------------------------------------
# Only a current, confirmed condition about this patient counts


@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed", "unknown"])
def test_a_condition_not_confirmed_establishes_nothing(verification):
    c = conds(condition(codings=[(ICD10CM, "B25.8", None)], verification={"coding": [{"code": verification}]}))
    assert c.cmv_disease_sites == frozenset() and c.evidence == ()


@pytest.mark.parametrize(
    "verification, counted",
    [
        ({"coding": [{"code": "confirmed"}]}, True),
        ({"text": "Confirmed"}, True),
        ("confirmed", True),  # DSTU2/STU3 string
        ("provisional", False),
        ({"text": "Provisional"}, False),
        ({"text": "probably"}, False),  # present but not readable as confirmed
    ],
)
def test_verification_status_must_read_confirmed_when_present(verification, counted):
    c = conds(condition("CMV colitis", verificationStatus=verification))
    assert (c.cmv_disease_sites == {"gi"}) is counted


@pytest.mark.parametrize(
    "clinical, counted",
    [
        ({"text": "Resolved"}, False),
        ({"text": "inactive"}, False),
        ({"text": "In remission"}, False),
        ({"text": "Active"}, True),
        ({"text": "Recurrence"}, True),
        ({"text": "relapse"}, True),
        ({"text": "see notes"}, False),  # cannot be read: not counted as active
        ({"coding": [{"code": "55561003"}]}, False),  # a code from elsewhere: not read as active
        ({"coding": [{"code": "active"}, {"code": "resolved"}]}, False),  # contradicts itself
    ],
)
def test_clinical_status_text_is_read_and_an_unreadable_status_is_not_active(clinical, counted):
    c = conds(condition("CMV colitis", clinical=clinical))
    assert (c.cmv_disease_sites == {"gi"}) is counted


@pytest.mark.parametrize(
    "text",
    [
        "CMV colitis?", "?CMV colitis", "CMV colitis (?)",
        "Concern for CMV colitis", "Evaluate for CMV colitis", "Low suspicion for CMV colitis",
        "Differential includes CMV colitis",
        "s/p CMV colitis", "Status post CMV colitis", "Status-post CMV viremia",
        "CMV retinitis, inactive", "CMV retinitis in remission", "Healed CMV retinitis", "CMV retinitis (healed)",
        "CMV retinitis, no longer active",
        "Mother had CMV retinitis",
    ],
)
def test_uncertain_past_or_healed_cmv_mentions_establish_nothing(text):
    c = conds(condition(text))
    assert c.cmv_disease_sites == frozenset() and not c.cmv_infection and c.evidence == ()


@pytest.mark.parametrize(
    "text",
    [
        "Family history of kidney transplant", "Mother had kidney transplant", "Family history: kidney transplant",
        "Kidney transplant donor", "Liver transplant donation", "HSCT donor", "Stem cell transplantation donor",
        "On kidney transplant list", "Liver transplant listed", "Liver transplant waitlisted",
        "Listed for kidney transplant", "Kidney transplant?", "Future kidney transplant",
    ],
)
def test_transplants_not_the_patient_s_or_not_yet_done_are_not_a_population(text):
    c = conds(condition(text))
    assert c.populations == frozenset() and c.transplant_organs == frozenset()


@pytest.mark.parametrize("text", ["Family history of HIV", "Patient's husband has HIV", "HIV in family",
                                  "Sister with HIV", "HIV?"])
def test_hiv_of_someone_else_or_in_question_is_not_the_patient_s(text):
    assert "hiv" not in conds(condition(text)).populations


@pytest.mark.parametrize(
    "text, organs",
    [
        ("Status post kidney transplant", {"kidney"}),
        ("s/p kidney transplant", {"kidney"}),
        ("History of kidney transplant", {"kidney"}),
        ("Status post liver transplant, CMV D+/R-", {"liver"}),
        ("Kidney transplant, donor CMV positive", {"kidney"}),  # the donor's serostatus: still a recipient
        ("Kidney transplant (deceased donor) 2019", {"kidney"}),
        ("Kidney transplant from his mother", {"kidney"}),  # a relative as the donor: the patient's graft
        ("Child-Pugh B cirrhosis; liver transplant 2020", {"liver"}),
        # A donor before the transplant words describes the graft; "donor for" is the patient giving.
        ("Living donor kidney transplant", {"kidney"}),
        ("Deceased donor kidney transplant 2021", {"kidney"}),
        ("Donor for kidney transplant", set()),
        ("Potential donor for liver transplant", set()),
    ],
)
def test_a_past_transplant_is_still_a_transplant(text, organs):
    assert conds(condition(text)).transplant_organs == organs


@pytest.mark.parametrize("text", ["s/p allogeneic HSCT", "History of bone marrow transplant",
                                  "Status post stem cell transplant 2025"])
def test_a_past_hsct_is_still_hsct(text):
    assert conds(condition(text)).populations == {"hsct"}


@pytest.mark.parametrize(
    "text",
    [
        "AV fistula for future dialysis", "Off dialysis", "Dialysis no longer required",
        "Hemodialysis catheter removed", "s/p hemodialysis", "Dialysis not required",
    ],
)
def test_dialysis_not_current_is_not_renal_replacement(text):
    assert conds(condition(text)).renal_replacement is None


@pytest.mark.parametrize("text", ["ESRD on hemodialysis via AV fistula", "Hemodialysis catheter in place",
                                  "Hemodialysis three times weekly"])
def test_current_dialysis_still_counts(text):
    assert conds(condition(text)).renal_replacement == "dialysis"


def test_hsct_date_is_not_guessed_from_the_recorded_date():
    # recordedDate is when the entry was made, not when the transplant was.
    c = conds({"resourceType": "Condition", "id": "h1", "recordedDate": "2026-10-01",
               "code": {"coding": [{"system": ICD10CM, "code": "Z94.84"}]}})
    assert c.populations == {"hsct"} and c.hsct_date is None


def test_cmv_disease_onset_is_the_newest_onset_of_a_disease_condition():
    # An old episode still on the problem list does not date the current one.
    c = conds(
        condition(codings=[(ICD10CM, "B25.8", "Other cytomegaloviral diseases")], onsetDateTime="2026-09-01"),
        condition("CMV retinitis", onsetDateTime="2026-08-15"),
        condition("Kidney transplant", onsetDateTime="2026-11-01"),  # not CMV disease
    )
    assert c.cmv_disease_onset.isoformat() == "2026-09-01"
    assert conds(condition("CMV retinitis")).cmv_disease_onset is None


# ---------------------------------------------------------------------------------------------
# A relative named as the donor is the patient's graft; someone else is read in their own clause


@pytest.mark.parametrize(
    "text, populations, sites",
    [
        ("Allogeneic HSCT (sibling donor) complicated by CMV pneumonitis", {"hsct"}, {"pneumonitis"}),
        ("Kidney transplant (father donor), HIV positive", {"sot", "hiv"}, set()),
        ("Matched sibling donor allogeneic stem cell transplant", {"hsct"}, set()),
        ("Haploidentical HSCT (donor: mother) complicated by CMV colitis", {"hsct"}, {"gi"}),
        ("Donor: mother - kidney transplant 2019", {"sot"}, set()),
        ("Kidney transplant from his mother, CMV hepatitis", {"sot"}, {"hepatitis"}),
        ("Mother donor kidney transplant", {"sot"}, set()),
    ],
)
def test_a_relative_named_as_the_donor_leaves_the_patient_s_conditions(text, populations, sites):
    c = conds(condition(text))
    assert c.populations == populations and c.cmv_disease_sites == sites


@pytest.mark.parametrize(
    "text, populations",
    [
        ("Family history of HIV", set()), ("Mother had kidney transplant", set()),
        ("Patient's husband has HIV", set()), ("Sister with HIV", set()),
        # A family history, or a relative as a heading, lists their conditions to the sentence's end.
        ("Family history: diabetes, HIV", set()), ("Mother: kidney transplant, HIV", set()),
        ("Kidney transplant; mother has HIV", {"sot"}),
        # The donor's own condition, named right after the donor.
        ("Kidney transplant, donor HIV positive", {"sot"}), ("Haploidentical HSCT; sibling donor: HIV", {"hsct"}),
        ("Kidney transplant, donor's HIV status positive", {"sot"}),
    ],
)
def test_someone_else_s_conditions_still_do_not_count(text, populations):
    assert conds(condition(text)).populations == populations


@pytest.mark.parametrize(
    "text, populations, organs",
    [
        ("Kidney transplant donor-specific antibodies", {"sot"}, {"kidney"}),
        ("Kidney transplant donor specific antibody (DSA) positive", {"sot"}, {"kidney"}),
        ("HSCT donor lymphocyte infusion", {"hsct"}, set()),
        ("Allogeneic stem cell transplant donor chimerism 98%", {"hsct"}, set()),
        ("Bone marrow transplant donor T-cell chimerism 95%", {"hsct"}, set()),
    ],
)
def test_recipient_phrases_naming_the_donor_are_the_patient_s_transplant(text, populations, organs):
    c = conds(condition(text))
    assert c.populations == populations and c.transplant_organs == organs


VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


@pytest.mark.parametrize(
    "codings, counted",
    [
        ([(VER_STATUS, "confirmed", "Confirmed"), (SNOMED, "410605003", "Confirmed present")], True),
        ([(VER_STATUS, "confirmed", None), ("http://example.org/local", "C", "Confirmed")], True),
        ([(SNOMED, "410605003", "Confirmed present (qualifier value)")], True),
        ([("http://example.org/local", "410605003", None)], False),  # not SNOMED CT: not read
        ([(VER_STATUS, "confirmed", None), (VER_STATUS, "provisional", None)], False),  # contradicts itself
        ([(VER_STATUS, "confirmed", None), (VER_STATUS, "differential", None)], False),
        ([(VER_STATUS, "confirmed", None), (VER_STATUS, "unconfirmed", None)], False),
        ([(VER_STATUS, "confirmed", None), (VER_STATUS, "refuted", None)], False),
        ([(VER_STATUS, "confirmed", None), (VER_STATUS, "entered-in-error", None)], False),
        ([(VER_STATUS, "confirmed", None), (VER_STATUS, "unknown", None)], False),  # STU3's "unknown"
        ([(SNOMED, "410605003", None), (VER_STATUS, "refuted", None)], False),
    ],
)
def test_a_confirmed_verification_may_carry_other_codings(codings, counted):
    verification = {"coding": [{"system": s, "code": c, **({"display": d} if d else {})} for s, c, d in codings]}
    c = conds(condition("CMV colitis", verification=verification))
    assert (c.cmv_disease_sites == {"gi"}) is counted


@pytest.mark.parametrize(
    "text, labels",
    [
        ("Mother, who had a kidney transplant, has HIV", []),  # all hers: a relative heads the sentence
        ("Sister, HIV positive", []),
        ("mother (HIV)", []),
        ("Kidney transplant from his mother, who has HIV", ["kidney transplant"]),  # "who" is the mother
        ("donor mother has HIV", []),  # the donor's, in the donor's clause
        ("Allogeneic HSCT (sibling donor) complicated by CMV pneumonitis",
         ["hematopoietic stem cell transplant", "CMV pneumonitis"]),
    ],
)
def test_whose_condition_a_relative_mention_leaves(text, labels):
    assert [e.label for e in conds(condition(text)).evidence] == labels


def test_a_snomed_qualifier_beside_confirmed_that_contradicts_it_is_not_confirmed():
    verification = {"coding": [{"system": VER_STATUS, "code": "confirmed"}, {"system": SNOMED, "code": "410594000"}]}
    c = conds(condition(codings=[(ICD10CM, "B25.8", "Other cytomegaloviral diseases")], verificationStatus=verification))
    assert c.cmv_disease_sites == frozenset()


@pytest.mark.parametrize(
    "text, labels",
    [
        ("Matched sibling donor HSCT complicated by CMV pneumonitis", ["hematopoietic stem cell transplant", "CMV pneumonitis"]),
        ("HSCT from his brother with CMV retinitis", ["hematopoietic stem cell transplant", "CMV retinitis"]),
        ("Renal transplant (mother) 2019, CMV colitis", ["kidney transplant", "CMV gastrointestinal disease"]),
        ("Kidney transplant from his mother, whose HIV is undetectable", ["kidney transplant"]),
        ("HIV in donor", []),
        ("HIV (donor)", []),
        ("Kidney transplant (donor CMV positive)", ["kidney transplant"]),
    ],
)
def test_a_donor_relative_leaves_the_patient_s_own_conditions(text, labels):
    assert [e.label for e in conds(condition(text)).evidence] == labels


@pytest.mark.parametrize(
    "text, note, confirmed",
    [
        ("Cytomegalovirus colitis", "Flexible sigmoidoscopy 2026-11-23: biopsy CMV immunohistochemistry positive.", True),
        ("Biopsy-proven CMV colitis", None, True),
        ("CMV colitis", "Histology confirmed CMV inclusions", True),
        ("CMV colitis", "Biopsy showed CMV inclusions", True),
        ("CMV colitis", "CMV colitis confirmed by biopsy", True),
        ("CMV colitis", "CMV immunostain positive on colonic biopsy", True),
        ("CMV colitis", "Biopsy CMV IHC negative", False),
        ("CMV colitis", "Biopsy was positive for HSV, CMV IHC negative; CMV colitis not confirmed", False),
        ("CMV colitis", "Prior biopsy positive for CMV 2019. Current flare: sigmoidoscopy pending", False),
        ("CMV colitis", "CMV IHC would be positive if performed", False),
        ("CMV colitis", "Biopsy: adenovirus positive", False),  # not CMV
        ("CMV colitis", "Histology: EBV-positive", False),
        ("CMV colitis", "Biopsy sample too small, CMV IHC positive staining equivocal", False),
        ("CMV colitis", "Biopsy pending; IHC positive control only", False),
        ("CMV colitis", "Biopsy not confirmed", False),
        ("CMV colitis", "Suspected on biopsy, CMV IHC awaited", False),
        ("CMV colitis", None, False),
        ("CMV oesophagitis", "Biopsy CMV IHC positive", False),  # GI disease, but not colitis
        ("CMV pneumonitis", "Biopsy CMV positive", False),  # not GI disease
        ("CMV colitis", "Known biopsy-proven UC, now CMV PCR positive in blood", False),
        ("CMV colitis", "CMV PCR positive, colonoscopy with biopsy scheduled", False),
        ("CMV colitis", "Serum CMV IgG positive, biopsy to be arranged", False),
        ("CMV colitis", "Biopsy requested to look for CMV inclusions", False),
        ("CMV colitis", "Biopsy to exclude CMV inclusions", False),
        ("CMV colitis", "Biopsy: CMV IHC positive?", False),
        ("CMV colitis", "Biopsy CMV IHC positive (2019)", False),
        ("CMV colitis", "Biopsy taken, CMV viraemia positive", False),
        ("CMV colitis", "CMV DNAemia positive, biopsy sent", False),
        ("CMV colitis", "Biopsy deferred, CMV viral load positive", False),
        ("CMV colitis", "CMV positive, biopsy declined", False),
        ("CMV colitis", "CMV confirmed by quantitative NAT, biopsy to follow", False),
        ("Biopsy-proven CMV colitis (known UC)", None, True),
        ("CMV colitis", "Biopsy: CMV inclusions with plasma cell infiltrate, IHC positive", True),
    ],
)
def test_cmv_colitis_confirmed_on_biopsy_by_name_or_note(text, note, confirmed):
    extra = {"note": [{"text": note}]} if note else {}
    c = facts(conditions=[condition(text, **extra)]).conditions
    assert c.colitis_biopsy_confirmed is confirmed
    assert any(e.label == "CMV colitis confirmed on biopsy" for e in c.evidence) is confirmed


def test_a_condition_name_is_read_for_its_first_mentions_of_each_condition():
    # Each mention is judged against the words before it in its sentence: a name repeating a cancelled
    # mention thousands of times cost that many rescans (1.3 ms a condition). Five mentions are read.
    from cds_service.facts.conditions import match_text

    assert [e.kind for e, _ in match_text("no HIV; " * 4 + "HIV")] == ["hiv"]
    assert match_text("no HIV; " * 5 + "HIV") == ()
