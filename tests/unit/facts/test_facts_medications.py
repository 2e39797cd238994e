"""Medication orders: drug identification, classes, dose in mg, interval, route, dates, record filter."""

from __future__ import annotations

import pytest
from facts_testkit import NOW, RXNORM, SNOMED, UCUM, basics, facts, med, quantity, sandbox_request

from cds_service.facts import build_facts
from cds_service.facts.record import PatientRecord
from cds_service.facts.model import MedicationOrder
from cds_service.policy import Policy


def draft(**kwargs):
    kwargs.setdefault("status", "draft")
    f = facts(drafts=[med(**kwargs)], observations=basics(height=175))
    (order,) = f.drafts
    return order, f


def order_of(text, **kwargs):
    return draft(text=text, **kwargs)[0]


# ---------------------------------------------------------------------------------------------
# The CDS Hooks sandbox


def test_sandbox_valganciclovir_tablets_are_900_mg_every_12_hours():
    body = sandbox_request("sandbox-order-select-valganciclovir.json")
    record = PatientRecord.from_hook(body["context"], body["prefetch"])
    f = build_facts(record, Policy(), NOW)
    (order,) = f.drafts
    assert order.id == "MedicationRequest/request-123" and order.is_draft
    assert (order.ingredient, order.drug_text) == ("valganciclovir", "valganciclovir 450 MG Oral Tablet")
    assert (order.dose_mg, order.dose_basis) == (900, "2 x 450 mg tablet")
    assert (order.unit_count, order.unit_strength_mg, order.dose_form) == (2, 450, "tablet")
    assert (order.interval_hours, order.timing_basis, order.route) == (12, "2 per 1 d", "oral")
    assert order.classes == {"anti-cmv"} and order.problems == ()
    # boundsPeriod 2026-11-24 to 2026-12-15: a Period's end is inclusive, so 22 days (the supply says 21).
    assert (order.start.isoformat(), order.end.isoformat(), order.duration_days) == ("2026-11-24", "2026-12-15", 22)
    assert (order.status, order.intent) == ("draft", "order")
    assert order.describe() == "valganciclovir 900 mg every 12 h (oral)"
    assert order.resource["id"] == "request-123"
    assert f.selected == {"MedicationRequest/request-123"}
    assert not [q for q in f.quality if q.kind == "unparseable-order"]


def test_sandbox_page_load_draft_without_a_drug_is_no_problem():
    body = sandbox_request("sandbox-order-select-pageload.json")
    f = build_facts(PatientRecord.from_hook(body["context"], body["prefetch"]), Policy(), NOW)
    (order,) = f.drafts
    assert order.ingredient is None and order.drug_text is None and order.problems == ()
    assert not [q for q in f.quality if q.kind == "unparseable-order"]


# ---------------------------------------------------------------------------------------------
# Which drug, which classes


@pytest.mark.parametrize(
    "text, ingredient, classes",
    [
        ("Valcyte 450 MG Oral Tablet", "valganciclovir", {"anti-cmv"}),
        ("Cytovene 500 MG Injection", "ganciclovir", {"anti-cmv"}),
        ("Foscavir 24 MG/ML Injectable Solution", "foscarnet", {"anti-cmv", "nephrotoxin"}),
        ("Vistide 75 MG/ML Injection", "cidofovir", {"anti-cmv", "nephrotoxin"}),
        ("Prevymis 480 MG Oral Tablet", "letermovir", {"anti-cmv"}),
        ("Livtencity 200 MG Oral Tablet", "maribavir", {"anti-cmv"}),
        ("Prograf 1 MG Oral Capsule", "tacrolimus", {"immunosuppressant", "calcineurin-inhibitor", "nephrotoxin"}),
        ("Envarsus XR 4 MG Extended Release Oral Tablet", "tacrolimus",
         {"immunosuppressant", "calcineurin-inhibitor", "nephrotoxin"}),
        ("Neoral 100 MG Oral Capsule", "cyclosporine", {"immunosuppressant", "calcineurin-inhibitor", "nephrotoxin"}),
        ("CellCept 500 MG Oral Tablet", "mycophenolate", {"immunosuppressant", "marrow-toxic"}),
        ("Myfortic 360 MG Delayed Release Oral Tablet", "mycophenolate", {"immunosuppressant", "marrow-toxic"}),
        ("Imuran 50 MG Oral Tablet", "azathioprine", {"immunosuppressant"}),
        ("mercaptopurine 50 MG Oral Tablet", "mercaptopurine", {"immunosuppressant"}),
        ("Jakafi 10 MG Oral Tablet", "ruxolitinib", {"immunosuppressant"}),
        ("Rapamune 1 MG Oral Tablet", "sirolimus", {"immunosuppressant", "mtor-inhibitor"}),
        ("Zortress 0.75 MG Oral Tablet", "everolimus", {"immunosuppressant", "mtor-inhibitor"}),
        # Biologic and small-molecule immunosuppressants (IBD, transplant): named on the immunosuppression card.
        ("Remicade 100 MG Injection", "infliximab", {"immunosuppressant"}),
        ("infliximab-dyyb (Inflectra) 100 MG Injection", "infliximab", {"immunosuppressant"}),
        ("Humira 40 MG/0.4 ML Prefilled Syringe", "adalimumab", {"immunosuppressant"}),
        ("Entyvio 300 MG Injection", "vedolizumab", {"immunosuppressant"}),
        ("Xeljanz 10 MG Oral Tablet", "tofacitinib", {"immunosuppressant"}),
        ("Nulojix 250 MG Injection", "belatacept", {"immunosuppressant"}),
        ("methotrexate 2.5 MG Oral Tablet", "methotrexate", {"immunosuppressant"}),
        ("prednisone 20 MG Oral Tablet", "prednisone", {"corticosteroid", "immunosuppressant"}),
        ("methylprednisolone 125 MG Injection", "methylprednisolone", {"corticosteroid", "immunosuppressant"}),
        ("Bactrim DS", "trimethoprim-sulfamethoxazole", {"marrow-toxic"}),
        ("sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet", "trimethoprim-sulfamethoxazole",
         {"marrow-toxic"}),
        ("dapsone 100 MG Oral Tablet", "dapsone", {"marrow-toxic"}),
        ("pentamidine 300 MG Injection", "pentamidine", {"marrow-toxic", "nephrotoxin"}),
        ("flucytosine 500 MG Oral Capsule", "flucytosine", {"marrow-toxic"}),
        ("Retrovir 100 MG Oral Capsule", "zidovudine", {"antiretroviral", "marrow-toxic"}),
        ("Combivir", "lamivudine/zidovudine", {"antiretroviral", "marrow-toxic"}),
        ("Biktarvy", "bictegravir/emtricitabine/tenofovir", {"antiretroviral"}),
        ("dolutegravir 50 MG Oral Tablet", "dolutegravir", {"antiretroviral"}),
        ("ritonavir 100 MG Oral Tablet", "ritonavir", {"antiretroviral"}),
        ("Paxlovid (nirmatrelvir / ritonavir)", "nirmatrelvir-ritonavir", set()),
        ("imipenem 500 MG / cilastatin 500 MG Injection", "imipenem-cilastatin", {"carbapenem-imipenem"}),
        ("Tegretol 200 MG Oral Tablet", "carbamazepine", {"cyp3a-inducer"}),
        ("phenytoin 100 MG Extended Release Oral Capsule", "phenytoin", {"cyp3a-inducer"}),
        ("phenobarbital 60 MG Oral Tablet", "phenobarbital", {"cyp3a-inducer"}),
        ("rifampicin 300 MG Oral Capsule", "rifampin", {"cyp3a-inducer"}),
        ("Mycobutin 150 MG Oral Capsule", "rifabutin", {"cyp3a-inducer"}),
        ("St. John's Wort 300 MG Oral Capsule", "st john's wort", {"cyp3a-inducer"}),
        ("probenecid 500 MG Oral Tablet", "probenecid", {"probenecid"}),
        ("Voriconazole 200 MG Oral Tablet", "voriconazole", set()),
        ("Vfend", "voriconazole", set()),
        ("vancomycin 1000 MG Injection", "vancomycin", {"nephrotoxin"}),
        ("vancomycin 125 MG Oral Capsule", "vancomycin", set()),  # not absorbed by mouth
        ("gentamicin 40 MG/ML Injectable Solution", "gentamicin", {"nephrotoxin"}),
        ("AmBisome 50 MG Injection", "amphotericin b", {"nephrotoxin"}),
        ("ibuprofen 400 MG Oral Tablet", "ibuprofen", {"nephrotoxin"}),
        ("acetaminophen 500 MG Oral Tablet", None, set()),
    ],
)
def test_drug_identification_and_classes(text, ingredient, classes):
    order = order_of(text, dose=(1, "mg"))
    assert order.ingredient == ingredient
    assert order.classes == classes


@pytest.mark.parametrize(
    "text",
    [
        "ganciclovir 1.5 MG/ML Ophthalmic Gel",
        "prednisolone acetate 10 MG/ML Ophthalmic Suspension",
        "tacrolimus 1 MG/G Topical Ointment",
        "tobramycin 300 MG/5ML Inhalation Solution",
    ],
)
def test_local_products_carry_no_systemic_class(text):
    order = order_of(text, dose=(1, "mg"))
    assert order.ingredient is not None and order.systemic is False and order.classes == frozenset()


def test_intravitreal_route_is_local():
    route = {"coding": [{"system": SNOMED, "code": "418821007", "display": "Intravitreal route"}]}
    order = order_of("ganciclovir 2 MG", dose=(2, "mg"), route=route)
    assert (order.systemic, order.route, order.route_text, order.classes) == (False, None, "Intravitreal route",
                                                                                frozenset())


@pytest.mark.parametrize(
    "text, systemic_classes",
    [
        ("hydrocortisone", False),  # creams, enemas and tablets exist: needs a systemic route or form
        ("hydrocortisone 100 MG Injection", True),
        ("prednisolone 15 MG/5ML Oral Solution", True),
        ("dexamethasone 4 MG Oral Tablet", True),
    ],
)
def test_steroids_that_need_a_systemic_route(text, systemic_classes):
    order = order_of(text, dose=(1, "mg"))
    assert ("corticosteroid" in order.classes) is systemic_classes


@pytest.mark.parametrize(
    "code, ingredient",
    [((RXNORM, "42316"), "tacrolimus"), ((RXNORM, "313566"), "valganciclovir"),
     (("http://www.whocc.no/atc", "J05AB14"), "valganciclovir"), ((RXNORM, "68149"), "mycophenolate")],
)
def test_drug_from_code_alone(code, ingredient):
    assert order_of(None, code=code, dose=(1, "mg")).ingredient == ingredient


def test_code_and_name_that_disagree_are_a_problem():
    order, f = draft(text="valganciclovir 450 MG Oral Tablet", code=(RXNORM, "42316"))
    assert order.ingredient is None
    assert any("coded as tacrolimus" in p for p in order.problems)
    assert [q.item for q in f.quality if q.kind == "unparseable-order"] == [order.id]


def test_contained_medication_with_strength():
    resource = med(text=None, dose=(2, "{tablet}"), status="draft")
    resource["medicationReference"] = {"reference": "#m1"}
    resource["contained"] = [{
        "resourceType": "Medication", "id": "m1", "code": {"text": "Valganciclovir"}, "form": {"text": "Tablet"},
        "ingredient": [{"itemCodeableConcept": {"text": "valganciclovir"},
                        "strength": {"numerator": quantity(450, "mg"), "denominator": {"value": 1, "unit": "TAB"}}}],
    }]
    (order,) = facts(drafts=[resource]).drafts
    assert (order.ingredient, order.dose_mg, order.unit_strength_mg, order.route) == ("valganciclovir", 900, 450, "oral")


def test_medication_reference_display_and_unresolvable_reference():
    resource = med(text=None, dose=(500, "mg"))
    resource["medicationReference"] = {"reference": "Medication/9", "display": "Ganciclovir 500 mg vial"}
    assert facts(drafts=[resource]).drafts[0].ingredient == "ganciclovir"
    resource["medicationReference"] = {"reference": "Medication/9"}
    (order,) = facts(drafts=[resource]).drafts
    assert order.ingredient is None and any("not contained" in p for p in order.problems)


# ---------------------------------------------------------------------------------------------
# Dose


@pytest.mark.parametrize(
    "text, dose, mg, basis",
    [
        ("valganciclovir 450 MG Oral Tablet", (900, "mg"), 900, "900 mg"),
        ("valganciclovir 450 MG Oral Tablet", (0.9, "g"), 900, "0.9 g = 900 mg"),
        ("valganciclovir 450 MG Oral Tablet", (900000, "ug"), 900, "900000 ug = 900 mg"),
        ("valganciclovir 450 MG Oral Tablet", (900000, "mcg"), 900, "900000 mcg = 900 mg"),
        ("valganciclovir 450 MG Oral Tablet", (2, "{tablet}"), 900, "2 x 450 mg tablet"),
        ("valganciclovir 450 MG Oral Tablet", (1, "TAB"), 450, "1 x 450 mg tablet"),
        ("valganciclovir 50 MG/ML Oral Solution", (18, "mL"), 900, "18 mL x 50 mg/mL"),
        ("ganciclovir 500 MG Injection", (5, "mg/kg"), 350,
         "5 mg/kg x 70 kg (actual weight, 2026-11-24) = 350 mg"),
    ],
)
def test_dose_per_administration_in_mg(text, dose, mg, basis):
    order = order_of(text, dose=dose)
    assert order.dose_mg == pytest.approx(mg) and order.dose_basis == basis and order.problems == ()


def test_mg_per_kg_uses_the_dosing_weight_policy():
    observations = basics(weight=110, height=170)
    resource = med("ganciclovir 500 MG Injection", dose=(5, "mg/kg"), status="draft")
    (order,) = build_facts_with(Policy(dosing_weight="adjusted"), observations, [resource]).drafts
    assert order.mg_per_kg == 5 and order.dose_mg == pytest.approx(5 * 83.55)  # the adjusted weight to 0.01 kg, down
    assert "adjusted weight" in order.dose_basis


def build_facts_with(policy, observations, drafts):
    return facts(policy, observations=observations, drafts=drafts)


def test_mg_per_kg_without_a_current_weight_is_not_guessed():
    f = facts(drafts=[med("ganciclovir 500 MG Injection", dose=(5, "mg/kg"), status="draft")])
    (order,) = f.drafts
    assert order.mg_per_kg == 5 and order.dose_mg is None
    assert any("no current weight" in p for p in order.problems)
    assert [q.kind for q in f.issues_for(order.id)] == ["unparseable-order"]


@pytest.mark.parametrize(
    "text, dose_field, problem",
    [
        ("valganciclovir 450 MG Oral Tablet", {"doseRange": {"low": {"value": 450}, "high": {"value": 900}}},
         "range (450 to 900)"),
        ("valganciclovir 450 MG Oral Tablet", {"doseQuantity": {"value": 2, "unit": "puff"}}, "not a mass"),
        ("valganciclovir 450 MG Oral Tablet", {"doseQuantity": {"value": 2}}, "has no unit"),
        ("valganciclovir 450 MG Oral Tablet", {"doseQuantity": {"value": -1, "unit": "mg"}}, "not positive"),
        ("Valcyte", {"doseQuantity": {"value": 2, "unit": "{tablet}"}}, "strength of one tablet is unknown"),
        ("valganciclovir 450 MG Oral Tablet", {"doseQuantity": {"value": 5, "unit": "mg/kg/d"}}, "daily amount"),
    ],
)
def test_unreadable_doses_are_problems_not_defaults(text, dose_field, problem):
    resource = med(text, dose=None, status="draft")
    resource["dosageInstruction"][0]["doseAndRate"] = [dose_field]
    f = facts(drafts=[resource])
    (order,) = f.drafts
    assert order.dose_mg is None and any(problem in p for p in order.problems)
    assert [q.kind for q in f.issues_for(order.id)] == ["unparseable-order"]


def test_problems_of_other_drugs_raise_no_issue():
    f = facts(drafts=[med("Biktarvy", dose=(1, "{tablet}"), status="draft")])
    assert f.drafts[0].problems and not f.issues_for(f.drafts[0].id)


def test_dose_only_as_text_is_a_problem():
    resource = med(dose=None, status="draft")
    resource["dosageInstruction"][0]["text"] = "900 mg twice daily"
    assert any("only as text" in p for p in facts(drafts=[resource]).drafts[0].problems)


def test_several_dosage_instructions_are_said():
    resource = med(dose=(900, "mg"), status="draft")
    resource["dosageInstruction"].append(dict(resource["dosageInstruction"][0]))
    assert any("2 dosage instructions" in p for p in facts(drafts=[resource]).drafts[0].problems)


# ---------------------------------------------------------------------------------------------
# Timing


@pytest.mark.parametrize(
    "timing, hours",
    [
        ({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}, 12),
        ({"repeat": {"frequency": 1, "period": 2, "periodUnit": "d"}}, 48),
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, 168),
        ({"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}}, 84),
        ({"repeat": {"period": 12, "periodUnit": "h"}}, 12),
        ({"repeat": {"frequency": 3, "frequencyMax": 3, "period": 1, "periodUnit": "d"}}, 8),  # 3 to 4: a range
        ({"repeat": {"frequency": 1, "period": 1, "periodUnits": "d"}}, 24),  # DSTU2
        ({"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}, 12),
        ({"repeat": {"when": ["MORN"]}}, 24),
        ({"repeat": {"dayOfWeek": ["mon", "wed", "fri"]}}, 56),
        ({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                               "code": "BID"}]}}, 12),
        ({"code": {"coding": [{"code": "TID"}]}}, 8),
        ({"code": {"coding": [{"code": "QID"}]}}, 6),
        ({"code": {"coding": [{"code": "QD"}]}}, 24),
        ({"code": {"coding": [{"code": "QOD"}]}}, 48),
        ({"code": {"coding": [{"code": "Q8H"}]}}, 8),
        ({"code": {"coding": [{"code": "Q12H"}]}}, 12),
        ({"code": {"coding": [{"code": "Q24H"}]}}, 24),
        ({"code": {"coding": [{"code": "AM"}]}}, 24),
        ({"code": {"coding": [{"code": "WK"}]}}, 168),
        ({"code": {"text": "every 12 hours"}}, 12),
        ({"code": {"text": "twice daily"}}, 12),
        ({"code": {"text": "q8h"}}, 8),
        ({"code": {"text": "every other day"}}, 48),
        ({"code": {"text": "three times weekly"}}, 56),
        ({"code": {"text": "once daily"}}, 24),
    ],
)
def test_timing_forms(timing, hours):
    order = order_of("valganciclovir 450 MG Oral Tablet", timing=timing)
    assert order.interval_hours == hours and order.timing_basis


@pytest.mark.parametrize(
    "timing",
    [
        {},
        {"repeat": {"frequency": 2, "period": 0, "periodUnit": "d"}},
        {"repeat": {"frequency": 2, "period": 1, "periodUnit": "fortnight"}},
        {"repeat": {"frequency": 2}},
        {"code": {"text": "as directed"}},
    ],
)
def test_unreadable_timing_is_a_problem(timing):
    order = order_of("valganciclovir 450 MG Oral Tablet", timing=timing)
    assert order.interval_hours is None and order.problems


def test_no_timing_at_all():
    resource = med(status="draft")
    del resource["dosageInstruction"][0]["timing"]
    assert "no dosing frequency" in facts(drafts=[resource]).drafts[0].problems


# ---------------------------------------------------------------------------------------------
# Route


@pytest.mark.parametrize(
    "text, route, expected",
    [
        ("ganciclovir 500 MG", {"coding": [{"system": SNOMED, "code": "47625008"}]}, "iv"),
        ("valganciclovir 450 MG", {"coding": [{"system": SNOMED, "code": "26643006"}]}, "oral"),
        ("ganciclovir 500 MG", {"text": "Intravenous"}, "iv"),
        ("valganciclovir 450 MG", {"text": "PO"}, "oral"),
        ("ganciclovir 500 MG Injection", None, "iv"),
        ("valganciclovir 50 MG/ML Oral Solution", None, "oral"),
        ("valganciclovir 450 MG Oral Tablet", None, "oral"),
        ("ganciclovir 500 MG", None, None),
    ],
)
def test_route(text, route, expected):
    assert order_of(text, dose=(450, "mg"), route=route).route == expected


def test_route_neither_iv_nor_oral_is_a_problem():
    order = order_of("ganciclovir 500 MG", dose=(350, "mg"), route={"text": "Intraperitoneal"})
    assert order.route is None and order.route_text == "Intraperitoneal" and order.systemic
    assert any("neither IV nor oral" in p for p in order.problems)


@pytest.mark.parametrize(
    "route, named",
    [
        ({"coding": [{"system": SNOMED, "code": "78421000"}]}, "intramuscular"),
        ({"coding": [{"system": SNOMED, "code": "34206005"}]}, "subcutaneous"),
        ({"text": "Intramuscular route"}, "intramuscular"),
        ({"text": "IM"}, "intramuscular"),
        ({"text": "subcut"}, "subcutaneous"),
        ({"text": "SQ"}, "subcutaneous"),
        ({"text": "Nasogastric tube"}, "enteral tube"),
        ({"text": "via NG"}, "enteral tube"),
        ({"coding": [{"system": SNOMED, "code": "x", "display": "Gastrostomy route"}]}, "enteral tube"),
        ({"text": "per G-tube"}, "enteral tube"),
        ({"text": "PEG"}, "enteral tube"),
        ({"text": "NGT"}, "enteral tube"),
        ({"text": "Gastric tube"}, "enteral tube"),
    ],
)
def test_injection_and_feeding_tube_routes_are_named(route, named):
    # Named so that an IV-infusion-only drug can be stopped, or tablets not crushed; the route is read, so no problem.
    order = order_of("ganciclovir 500 MG Injection", dose=(350, "mg"), route=route)
    assert (order.route, order.route_text, order.systemic, order.problems) == (None, named, True, ())


def ganciclovir_with_dosage(**dosage_fields):
    resource = med("ganciclovir 500 MG Injection", dose=(350, "mg"), status="draft",
                   route={"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous"}]})
    resource["dosageInstruction"][0].update(dosage_fields)
    (order,) = facts(drafts=[resource], observations=basics(height=175)).drafts
    return order


@pytest.mark.parametrize(
    "fields, bolus",
    [
        ({"method": {"text": "IV push"}}, "IV push"),
        ({"method": {"coding": [{"system": SNOMED, "code": "x", "display": "Bolus"}]}}, "Bolus"),
        ({"route": {"text": "Intravenous push"}}, "Intravenous push"),
        ({"method": {"text": "Infuse"}}, None),
        ({"method": {"text": "IV infusion, not bolus"}}, None),
        ({"method": {"text": "Do not push"}}, None),
        ({"method": {"text": "Never give as a bolus; slow IV push only"}}, "Never give as a bolus; slow IV push only"),
        ({"method": {"text": "Non-bolus infusion"}}, None),
        ({"method": {"text": "Not to be given as IV push"}}, None),
        ({"method": {"text": "Not to exceed 10 mg/min IV push"}}, "Not to exceed 10 mg/min IV push"),
        ({"method": {"text": "Without dilution, IV bolus"}}, "Without dilution, IV bolus"),
        ({"method": {"text": "IV infusion, not push or bolus"}}, None),
        ({"method": {"text": "Not for IV push or bolus"}}, None),
        ({"method": {"text": "Do not administer by IV push"}}, None),
        # The instruction's text too: the prescriber's sig can order the push the coded fields leave out.
        ({"text": "175 mg IV push every 12 hours"}, "175 mg IV push every 12 hours"),
        ({"text": "175 mg in 100 mL over 1 hour every 12 hours. Do not give IV push."}, None),
        ({"text": "Slow IV push over 5 minutes"}, "Slow IV push over 5 minutes"),
        ({"text": "175 mg as a rapid bolus"}, "175 mg as a rapid bolus"),
        # Only an injection of the drug counts: a negation just after, a fluid bolus or a flush do not.
        ({"text": "IV push not recommended"}, None),
        ({"text": "IV push is not allowed"}, None),
        ({"text": "Infuse over 1 h; flush with 10 mL NS push after the infusion"}, None),
        ({"text": "Give 500 mL NS IV bolus before each infusion"}, None),
        ({"text": "Push fluids: 2 L by mouth daily"}, None),
        ({"text": "Avoid rapid infusion or bolus injection"}, None),
        ({"text": "Infuse over 1 h; IV push may cause toxicity"}, None),
        ({"text": "Do not give by rapid IV injection or bolus"}, None),
        # The drug pushed in its own diluent, and the other ways a sig says it.
        ({"text": "175 mg in 50 mL NS IV push"}, "175 mg in 50 mL NS IV push"),
        ({"text": "175 mg IVP every 12 hours"}, "175 mg IVP every 12 hours"),
        ({"text": "175 mg given as a bolus"}, "175 mg given as a bolus"),
        ({"text": "175 mg push over 2 minutes"}, "175 mg push over 2 minutes"),
        ({"text": "175 mg by rapid IV injection every 12 hours"}, "175 mg by rapid IV injection every 12 hours"),
        ({"text": "175 mg i.v. push"}, "175 mg i.v. push"),
        ({"text": "175 mg pushed over 3 min"}, "175 mg pushed over 3 min"),
        ({"text": "Flush then give 175 mg IVP"}, "Flush then give 175 mg IVP"),
        ({"text": "No flush needed. 175 mg IV push"}, "No flush needed. 175 mg IV push"),
        ({"text": "175 mg in 250 mL NS IV push"}, "175 mg in 250 mL NS IV push"),
        ({"text": "175 mg IV push, do not refrigerate"}, "175 mg IV push, do not refrigerate"),
        # A negation shortly before it in its clause, or one said of it, rules it out; a fluid bolus is not the drug.
        ({"text": "Infuse over 1 hour; DO NOT GIVE RAPIDLY OR BY IV PUSH"}, None),
        ({"text": "No rapid infusion, IV push or bolus"}, None),
        ({"text": "Rather than IV push, infuse over 1 h"}, None),
        ({"text": "IV push should be avoided"}, None),
        ({"text": "Rapid IV bolus may result in toxicity"}, None),
        ({"text": "flush line with 10 mL saline by slow push"}, None),
        ({"text": "NS 500 mL IV bolus before each dose"}, None),
        ({"text": "175 mg IV over 1 hour, then flush with 10 mL NS IV push"}, None),
        ({"text": "175 mg in 100 mL NS IV piggyback over 1 hour, then flush 20 mL NS IV push"}, None),
        ({"text": "IV push or bolus should be avoided"}, None),
        ({"text": "IV push/bolus not recommended"}, None),
        # A negation in another phrase, over a comma, does not reach it.
        ({"text": "If no pump available, give 175 mg IV push"}, "If no pump available, give 175 mg IV push"),
        ({"text": "175 mg without further dilution, IV push"}, "175 mg without further dilution, IV push"),
        # One negated list over commas; the drug's own diluent however written.
        ({"text": "Not for IM, IV push"}, None),
        ({"text": "Do not give IM, SC, or by IV push"}, None),
        ({"text": "175 mg in 100 mL 0.9% NS IV push"}, "175 mg in 100 mL 0.9% NS IV push"),
        ({"text": "175 mg/100 mL NS IV push"}, "175 mg/100 mL NS IV push"),
        ({"text": "175 mg (in 100 mL NS) IV push"}, "175 mg (in 100 mL NS) IV push"),
        # A negation in a phrase of its own, not a list of routes, does not reach over the comma.
        ({"text": "Do not dilute, IV push"}, "Do not dilute, IV push"),
        ({"text": "No pump available, IV push"}, "No pump available, IV push"),
        # A fluid bolus after the drug's own diluent is still a fluid bolus.
        ({"text": "175 mg in 100 mL NS IV over 1 hour, then NS 500 mL IV bolus"}, None),
        ({"text": "5 mg/kg IV over 1 hour, then NS 500 mL IV bolus"}, None),
        ({"text": "Infuse 175 mg in 100 mL normal saline over 1 hour every 12 hours, then give the next dose by IV "
                  "push at the bedside"}, "…12 hours, then give the next dose by IV push at the bedside"),
        ({}, None),
    ],
)
def test_an_iv_push_or_bolus_is_read_from_the_method_route_or_text(fields, bolus):
    order = ganciclovir_with_dosage(**fields)
    assert (order.route, order.bolus_text, order.problems) == ("iv", bolus, ())


@pytest.mark.parametrize(
    "repeat, minutes",
    [
        ({"duration": 2, "durationUnit": "h"}, 120),
        ({"duration": 90, "durationUnit": "min"}, 90),
        ({"duration": 1800, "durationUnit": "s"}, 30),
        ({"duration": 1, "durationUnit": "d"}, None),  # not an infusion time
        ({"duration": 60}, None),  # no unit: not guessed
        ({"duration": -1, "durationUnit": "h"}, None),
        ({}, None),
    ],
)
def test_the_infusion_time_is_read_from_timing_repeat_duration(repeat, minutes):
    order = ganciclovir_with_dosage(timing={"repeat": {"frequency": 2, "period": 1, "periodUnit": "d", **repeat}})
    assert (order.interval_hours, order.infusion_minutes, order.problems) == (12, minutes, ())


@pytest.mark.parametrize("unit, form", [("tablet", "tablet"), ("{tbl}", "tablet"), ("capsule", "capsule"), ("{pill}", None)])
def test_a_dose_counted_in_tablets_or_capsules_gives_the_form_when_the_name_does_not(unit, form):
    order = order_of("valganciclovir 450 MG", dose=(2, unit))
    assert (order.dose_mg, order.unit_count, order.dose_form) == (900, 2, form)
    assert order_of("valganciclovir 50 MG/ML Oral Solution", dose=(18, "mL")).dose_form == "solution"


@pytest.mark.parametrize(
    "route",
    [
        {"text": "PO/NG"},
        {"text": "Oral or via NG tube"},
        {"text": "By mouth or PEG"},
        {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}], "text": "PO/NG"},
    ],
)
def test_by_mouth_or_tube_is_oral_and_names_the_tube(route):
    order = order_of("valganciclovir 450 MG Oral Tablet", dose=(2, "{pill}"), route=route)
    assert (order.route, order.route_text, order.problems) == ("oral", "enteral tube", ())


# ---------------------------------------------------------------------------------------------
# DSTU2 and dates


def test_dstu2_medication_order():
    resource = {
        "resourceType": "MedicationOrder",
        "id": "mo1",
        "status": "draft",
        "dateWritten": "2026-11-24",
        "medicationCodeableConcept": {"text": "valganciclovir 450 MG Oral Tablet"},
        "dosageInstruction": [{
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnits": "d"}},
            "route": {"coding": [{"system": SNOMED, "code": "26643006"}]},
            "doseQuantity": {"value": 900, "unit": "mg", "system": UCUM, "code": "mg"},
        }],
    }
    f = facts(drafts=[resource], selections=["MedicationOrder/mo1"])
    (order,) = f.drafts
    assert order.id == "MedicationOrder/mo1" and order.describe() == "valganciclovir 900 mg every 12 h (oral)"
    assert order.start.isoformat() == "2026-11-24" and f.selected == {"MedicationOrder/mo1"}


def test_duration_and_dates():
    resource = med(status="draft", authoredOn="2026-11-24",
                   repeat={"frequency": 2, "period": 1, "periodUnit": "d", "boundsDuration": {"value": 2, "unit": "wk"}},
                   dispenseRequest={"validityPeriod": {"end": "2026-12-31"}})
    (order,) = facts(drafts=[resource]).drafts
    assert (order.start.isoformat(), order.end.isoformat(), order.duration_days) == ("2026-11-24", "2026-12-31", 14)
    resource = med(status="draft", dispenseRequest={"expectedSupplyDuration": {"value": 21, "unit": "days"}})
    assert facts(drafts=[resource]).drafts[0].duration_days == 21


# ---------------------------------------------------------------------------------------------
# Orders on record


@pytest.mark.parametrize(
    "status, dates, kept",
    [
        ("active", {}, True),
        ("on-hold", {}, True),
        (None, {}, True),
        ("completed", {"authoredOn": "2026-11-01"}, True),
        ("stopped", {"authoredOn": "2026-11-20"}, True),
        ("completed", {"authoredOn": "2026-08-01"}, False),
        ("completed", {}, False),  # no date: cannot be shown recent
        # The end, when the order gives one, decides; the start only without an end.
        ("completed", {"authoredOn": "2026-01-01", "dateEnded": "2026-11-20"}, True),  # DSTU2
        ("completed", {"authoredOn": "2026-01-01",
                       "dispenseRequest": {"validityPeriod": {"start": "2026-01-01", "end": "2026-11-24"}}}, True),
        ("completed", {"authoredOn": "2026-11-20", "dateEnded": "2026-06-01"}, False),
        ("stopped", {"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-10"}}}}, True),
        ("stopped", {"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-10", "end": "2026-11-12"}}},
                     "authoredOn": "2026-01-01"}, True),
        # A stated start after the end: either may be the true date, so the later one decides.
        ("stopped", {"timing": {"repeat": {"boundsPeriod": {"start": "2026-11-10", "end": "2026-09-01"}}}}, True),
        ("stopped", {"timing": {"repeat": {"boundsPeriod": {"start": "2026-09-10", "end": "2026-09-01"}}}}, False),
        ("cancelled", {"authoredOn": "2026-11-25"}, False),
        ("entered-in-error", {"authoredOn": "2026-11-25"}, False),
        ("draft", {"authoredOn": "2026-11-25"}, False),
    ],
)
def test_orders_on_record_are_active_or_recently_ended(status, dates, kept):
    f = facts(medications=[med("vancomycin 1000 MG Injection", dose=(1000, "mg"), status=status, **dates)])
    assert bool(f.medications) is kept


def test_an_order_that_ends_before_it_starts_has_no_dates_and_says_why():
    resource = med(status="active", repeat={"frequency": 2, "period": 1, "periodUnit": "d",
                                            "boundsPeriod": {"start": "2026-11-16", "end": "2026-11-06"}})
    f = facts(medications=[resource])
    (order,) = f.medications
    assert (order.start, order.end, order.duration_days) == (None, None, None)
    assert order.problems == ("the order ends (2026-11-06) before it starts (2026-11-16): neither date is used",)
    assert [q.kind for q in f.issues_for(order.id)] == ["unparseable-order"]


def test_an_order_written_after_the_end_it_records_has_no_start():
    # A course entered afterwards: when it was written is not when it began.
    resource = med(status="completed", authoredOn="2026-11-20", dateEnded="2026-11-06")
    (order,) = facts(medications=[resource]).medications
    assert (order.start, order.end.isoformat(), order.problems) == (None, "2026-11-06", ())


def test_orders_on_record_are_listed_newest_first_whatever_the_bundle_order():
    # The cards must not change with the EHR's bundle order (which course's card keeps a switch, which
    # course the status card leads with); drafts keep the clinician's order.
    def dated(mid, start):
        return med(id=mid, repeat={"frequency": 2, "period": 1, "periodUnit": "d", "boundsPeriod": {"start": start}})
    on_record = [dated("a", "2026-11-01"), dated("c", "2026-11-20"), dated("b", "2026-11-20"), med(id="undated")]
    expected = ["MedicationRequest/b", "MedicationRequest/c", "MedicationRequest/a", "MedicationRequest/undated"]
    for bundle in (on_record, on_record[::-1]):
        assert [o.id for o in facts(medications=bundle).medications] == expected
        drafts = [{**r, "status": "draft"} for r in bundle]
        assert [o.id for o in facts(drafts=drafts).drafts] == [f"MedicationRequest/{r['id']}" for r in bundle]


def test_recently_ended_by_bounds_end():
    resource = med("vancomycin 1000 MG Injection", dose=(1000, "mg"), status="completed",
                   repeat={"frequency": 2, "period": 1, "periodUnit": "d",
                           "boundsPeriod": {"start": "2026-08-01", "end": "2026-11-22"}})
    (order,) = facts(medications=[resource]).medications
    assert order.end.isoformat() == "2026-11-22" and order.is_("nephrotoxin") and not order.is_draft


def test_unreadable_orders_are_skipped_and_counted():
    f = facts(medications=["junk", {"resourceType": "Patient"}, med(status="active")])
    assert len(f.medications) == 1 and f.skipped_resources == 2


def test_orders_without_id_get_distinct_ids():
    a, b = med(status="draft"), med(status="draft")
    del a["id"], b["id"]
    ids = [o.id for o in facts(drafts=[a, b]).drafts]
    assert len(set(ids)) == 2 and all(i.startswith("MedicationRequest/") for i in ids)


# ---------------------------------------------------------------------------------------------
# Orders that cannot be read unambiguously are problems, not a guessed value


@pytest.mark.parametrize(
    "text, hours",
    [
        ("2 times daily", 12), ("twice-daily", 12), ("2x daily", 12), ("2 x daily", 12), ("two times a day", 12),
        ("3x daily", 8), ("three-times daily", 8), ("thrice daily", 8), ("4 times a day", 6),
        ("2 times weekly", 84), ("twice a week", 84), ("3x weekly", 56),
        ("once daily", 24), ("once-weekly", 168), ("twice daily (every 12 hours)", 12),
    ],
)
def test_frequency_words(text, hours):
    order = order_of("valganciclovir 450 MG Oral Tablet", timing={"code": {"text": text}})
    assert (order.interval_hours, order.problems) == (hours, ())


@pytest.mark.parametrize(
    "text",
    [
        "once daily x 21 days then twice daily",
        "twice daily for 21 days, then once daily",
        "twice daily followed by once daily",
        "q12h x 3 days then per renal function",
        "twice daily or once daily", "twice daily, once daily",
        "once or twice daily", "2-3 times daily", "2 to 3 times daily", "every 8-12 hours", "q8-12h",
        "q12h/q24h",
    ],
)
def test_a_frequency_text_with_phases_ranges_or_two_frequencies_is_unreadable(text):
    order = order_of("valganciclovir 450 MG Oral Tablet", timing={"code": {"text": text}})
    assert order.interval_hours is None and order.timing_basis is None
    assert any("frequency" in p for p in order.problems)


@pytest.mark.parametrize(
    "repeat",
    [
        {"frequency": 1, "period": 8, "periodMax": 12, "periodUnit": "h"},
        {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"},
        {"frequency": 3, "frequencyMax": 4, "period": 1, "periodUnit": "d"},
        {"frequency": 1, "period": 8, "periodMax": "12", "periodUnit": "h"},  # unreadable maximum
    ],
)
def test_a_range_of_intervals_is_a_problem_not_its_lower_value(repeat):
    order = order_of("valganciclovir 450 MG Oral Tablet", repeat=repeat)
    assert order.interval_hours is None and any("range of intervals" in p for p in order.problems)


@pytest.mark.parametrize("repeat", [{"frequency": 2, "frequencyMax": 2, "period": 1, "periodUnit": "d"},
                                    {"frequency": 1, "period": 12, "periodMax": 12, "periodUnit": "h"}])
def test_a_maximum_equal_to_the_value_is_no_range(repeat):
    order = order_of("valganciclovir 450 MG Oral Tablet", repeat=repeat)
    assert (order.interval_hours, order.problems) == (12, ())


def test_supply_duration_with_repeats_allowed_is_not_the_course_length():
    resource = med(status="draft", dispenseRequest={"expectedSupplyDuration": {"value": 7, "unit": "d"},
                                                    "numberOfRepeatsAllowed": 5})
    assert facts(drafts=[resource]).drafts[0].duration_days is None
    resource = med(status="draft", dispenseRequest={"expectedSupplyDuration": {"value": 7, "unit": "d"},
                                                    "numberOfRepeatsAllowed": 0})
    assert facts(drafts=[resource]).drafts[0].duration_days == 7


def test_bounds_period_end_is_inclusive():
    resource = med(status="draft", repeat={"frequency": 2, "period": 1, "periodUnit": "d",
                                           "boundsPeriod": {"start": "2026-11-01", "end": "2026-11-21"}})
    (order,) = facts(drafts=[resource]).drafts
    assert (order.start.isoformat(), order.end.isoformat(), order.duration_days) == ("2026-11-01", "2026-11-21", 21)
    resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-11-01", "end": "2026-11-01"}
    assert facts(drafts=[resource]).drafts[0].duration_days == 1


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 900, "unit": "g", "code": "mg"},
        {"value": 0.9, "unit": "mg", "system": UCUM, "code": "g"},
        {"value": 2, "unit": "mg", "system": UCUM, "code": "{tablet}"},
        {"value": 5, "unit": "mg", "system": UCUM, "code": "mg/kg"},
        {"value": 18, "unit": "g", "system": UCUM, "code": "mL"},
    ],
)
def test_a_dose_unit_that_disagrees_with_its_code_is_a_problem(quantity):
    resource = med("valganciclovir 450 MG Oral Tablet", dose=None, status="draft")
    resource["dosageInstruction"][0]["doseAndRate"] = [{"doseQuantity": quantity}]
    f = facts(drafts=[resource], observations=basics())
    (order,) = f.drafts
    assert order.dose_mg is None and order.dose_basis is None
    assert any("disagree" in p for p in order.problems)
    assert [q.kind for q in f.issues_for(order.id)] == ["unparseable-order"]


@pytest.mark.parametrize(
    "quantity, mg",
    [
        ({"value": 900, "unit": "mg", "system": UCUM, "code": "mg"}, 900),
        ({"value": 900000, "unit": "mcg", "system": UCUM, "code": "ug"}, 900),
        ({"value": 900, "unit": "milligrams", "system": UCUM, "code": "mg"}, 900),
        ({"value": 2, "unit": "tablet", "system": UCUM, "code": "{tbl}"}, 900),
        ({"value": 2, "unit": "tablet(s)", "system": UCUM, "code": "{tablet}"}, 900),  # unit words not read
    ],
)
def test_a_dose_unit_and_code_that_agree_are_read(quantity, mg):
    resource = med("valganciclovir 450 MG Oral Tablet", dose=None, status="draft")
    resource["dosageInstruction"][0]["doseAndRate"] = [{"doseQuantity": quantity}]
    (order,) = facts(drafts=[resource]).drafts
    assert (order.dose_mg, order.problems) == (mg, ())


def test_a_strength_whose_unit_disagrees_with_its_code_is_unknown():
    resource = med(text=None, dose=(2, "{tablet}"), status="draft")
    resource["medicationReference"] = {"reference": "#m1"}
    resource["contained"] = [{
        "resourceType": "Medication", "id": "m1", "code": {"text": "Valganciclovir"}, "form": {"text": "Tablet"},
        "ingredient": [{"itemCodeableConcept": {"text": "valganciclovir"},
                        "strength": {"numerator": {"value": 450, "unit": "g", "system": UCUM, "code": "mg"},
                                     "denominator": {"value": 1, "unit": "TAB"}}}],
    }]
    (order,) = facts(drafts=[resource]).drafts
    assert order.dose_mg is None and order.unit_strength_mg is None
    assert any("strength of one tablet is unknown" in p for p in order.problems)


def test_orders_on_record_are_read_up_to_a_bound_the_newest_and_the_rest_count_as_not_retrieved():
    from cds_service.clinical.missing_data import retrieved
    from cds_service.facts.medications import MAX_ORDERS_ON_RECORD

    # An EHR listing 600 current valganciclovir orders: the newest 500 are read (each anti-CMV order is
    # checked against the others), and what is left unread is said, so an absence proves nothing.
    dates = [f"2026-{1 + i // 28 % 11:02d}-{1 + i % 28:02d}" for i in range(600)]
    many = [med(id=f"m{i:03d}", authoredOn=day) for i, day in enumerate(dates)]
    f = facts(observations=basics(), medications=many)
    assert len(f.medications) == MAX_ORDERS_ON_RECORD == 500
    assert f.medications[0].start.isoformat() == max(dates) and f.skipped_resources == 100
    (issue,) = f.issues_for("medications")
    assert issue.kind == "missing" and "600 current or recently ended, only the newest 500 read" in issue.detail
    assert not retrieved(f, "medications")
    # A record within the bound is read whole, and nothing is said.
    f = facts(observations=basics(), medications=many[:500])
    assert len(f.medications) == 500 and f.issues_for("medications") == () and retrieved(f, "medications")


def test_free_texts_are_read_up_to_a_bound():
    # Frequency, bolus and strength words are read in the first FREE_TEXT_READ characters only: the
    # patterns that read them look back or backtrack ("daily " x 40,000 took 31 s; a 40,000-digit drug
    # name 110 s). No real order writes them past hundreds of characters of other words.
    from cds_service.facts.fhir import FREE_TEXT_READ

    padding = "x " * (FREE_TEXT_READ // 2)
    assert order_of("valganciclovir 450 MG Oral Tablet", timing={"code": {"text": "twice daily"}}).interval_hours == 12
    late = order_of("valganciclovir 450 MG Oral Tablet", timing={"code": {"text": padding + "twice daily"}})
    assert late.interval_hours is None and "dosing frequency could not be read" in late.problems
    assert ganciclovir_with_dosage(method={"text": padding + "IV push"}).bolus_text is None
    assert ganciclovir_with_dosage(method={"text": "IV push " + padding}).bolus_text is not None
    assert order_of("valganciclovir 450 MG Oral Tablet").unit_strength_mg == 450
    assert order_of("valganciclovir " + padding + "450 MG Oral Tablet").unit_strength_mg is None


@pytest.mark.parametrize("hours, words", [
    (33.6, "5 times weekly (every 33.6 h)"), (56, "3 times weekly (every 56 h)"), (84, "2 times weekly (every 84 h)"),
    (24, "every 24 h"), (48, "every 48 h"), (168, "every 168 h"), (12, "every 12 h")])
def test_doses_a_few_times_a_week_are_described_as_the_prescriber_says_them(hours, words):
    order = MedicationOrder(id="MedicationRequest/1", ingredient="ganciclovir", drug_text=None, dose_mg=420,
                            interval_hours=hours, route="iv")
    assert order.describe() == f"ganciclovir 420 mg {words} (IV)"
