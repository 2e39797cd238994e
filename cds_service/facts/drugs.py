"""Which drug an order is: generic and brand names, and the drug classes the rules use.

Orders arrive coded in many systems or as text only, so names are the reliable path: each name is
matched as whole words in the order's text and displays ("valganciclovir" never matches
"ganciclovir").  Codes that identify a drug are in codes.py.  Class membership follows the clinical
reference; where a class list needed a choice, the comment says which source it follows.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from cds_service.facts import fhir
from cds_service.frozen import frozen

ANTI_CMV = "anti-cmv"
IMMUNOSUPPRESSANT = "immunosuppressant"
CNI = "calcineurin-inhibitor"
MTOR = "mtor-inhibitor"
CORTICOSTEROID = "corticosteroid"
NEPHROTOXIN = "nephrotoxin"
MARROW_TOXIC = "marrow-toxic"
IMIPENEM = "carbapenem-imipenem"
CYP3A_INDUCER = "cyp3a-inducer"
ARV = "antiretroviral"
PROBENECID = "probenecid"


@frozen
class Drug:
    ingredient: str  # lower-case generic name, as MedicationOrder.ingredient reports it
    classes: frozenset[str]
    names: tuple[str, ...]  # generic names, synonyms and brands, matched as whole words
    absorbs: tuple[str, ...] = ()  # ingredients this product names that are part of it
    # Not absorbed by mouth: an oral order is not a nephrotoxin (oral vancomycin, neomycin-like use).
    oral_not_absorbed: bool = False
    # Counts as systemic only when the route or dose form says so (also exists as creams, drops...).
    needs_systemic_route: bool = False


def _drug(ingredient: str, classes: Iterable[str], *names: str, **options) -> Drug:
    return Drug(ingredient, frozenset(classes), (ingredient, *names), **options)


_STEROID = (CORTICOSTEROID, IMMUNOSUPPRESSANT)
_AMINOGLYCOSIDE = dict(oral_not_absorbed=True)

DRUGS: tuple[Drug, ...] = (
    # Anti-CMV agents.  Ganciclovir and valganciclovir carry no other class: their own marrow
    # toxicity is not an "additive" one.  Brands of local-only products (ophthalmic ganciclovir)
    # are not listed: their generic text names the dose form, which makes them local orders.
    _drug("ganciclovir", [ANTI_CMV], "cytovene"),
    _drug("valganciclovir", [ANTI_CMV], "valcyte"),
    _drug("foscarnet", [ANTI_CMV, NEPHROTOXIN], "foscavir"),
    _drug("cidofovir", [ANTI_CMV, NEPHROTOXIN], "vistide"),
    _drug("letermovir", [ANTI_CMV], "prevymis"),
    _drug("maribavir", [ANTI_CMV], "livtencity"),
    # Immunosuppressants.  Calcineurin inhibitors are nephrotoxic too (dose-related renal
    # vasoconstriction), so they also count as nephrotoxins.
    _drug("tacrolimus", [IMMUNOSUPPRESSANT, CNI, NEPHROTOXIN], "prograf", "envarsus", "astagraf", "advagraf"),
    _drug("cyclosporine", [IMMUNOSUPPRESSANT, CNI, NEPHROTOXIN], "ciclosporin", "cyclosporin", "neoral",
          "sandimmune", "gengraf"),
    _drug("mycophenolate", [IMMUNOSUPPRESSANT, MARROW_TOXIC], "mycophenolic acid", "mycophenolate mofetil",
          "cellcept", "myfortic"),
    _drug("azathioprine", [IMMUNOSUPPRESSANT], "imuran", "azasan"),
    _drug("mercaptopurine", [IMMUNOSUPPRESSANT], "purixan", "purinethol", "xaluprine", "6 mp", "6mp"),  # the thiopurine azathioprine becomes
    _drug("sirolimus", [IMMUNOSUPPRESSANT, MTOR], "rapamune"),
    _drug("everolimus", [IMMUNOSUPPRESSANT, MTOR], "zortress", "afinitor", "certican"),
    # Biologic and small-molecule immunosuppressants of IBD and transplant care (not named in the reference,
    # whose brief asks to reduce immunosuppression; each one's label warns of serious infections as an
    # immunosuppressant): anti-TNF, anti-integrin, anti-IL-12/23, JAK inhibitors (ruxolitinib for GVHD), belatacept,
    # methotrexate.
    _drug("infliximab", [IMMUNOSUPPRESSANT], "remicade", "inflectra", "renflexis", "avsola", "zymfentra"),
    _drug("adalimumab", [IMMUNOSUPPRESSANT], "humira", "amjevita", "cyltezo", "hadlima", "hyrimoz", "yusimry"),
    _drug("certolizumab", [IMMUNOSUPPRESSANT], "certolizumab pegol", "cimzia"),
    _drug("golimumab", [IMMUNOSUPPRESSANT], "simponi"),
    _drug("vedolizumab", [IMMUNOSUPPRESSANT], "entyvio"),
    _drug("ustekinumab", [IMMUNOSUPPRESSANT], "stelara"),
    _drug("tofacitinib", [IMMUNOSUPPRESSANT], "xeljanz"),
    _drug("upadacitinib", [IMMUNOSUPPRESSANT], "rinvoq"),
    _drug("ruxolitinib", [IMMUNOSUPPRESSANT], "jakafi", "jakavi"),  # JAK inhibitor of graft-versus-host disease
    _drug("belatacept", [IMMUNOSUPPRESSANT], "nulojix"),
    _drug("methotrexate", [IMMUNOSUPPRESSANT], "trexall", "otrexup", "rasuvo"),
    # Systemic corticosteroids.  Prednisone and methylprednisolone exist only as systemic products;
    # the others also as eye drops, creams and enemas, so they count only with a systemic route/form.
    _drug("prednisone", _STEROID, "deltasone", "rayos"),
    _drug("methylprednisolone", _STEROID, "medrol", "solu medrol", "depo medrol"),
    _drug("prednisolone", _STEROID, "orapred", "millipred", needs_systemic_route=True),
    _drug("dexamethasone", _STEROID, "decadron", needs_systemic_route=True),
    _drug("hydrocortisone", _STEROID, "solu cortef", "cortef", needs_systemic_route=True),
    # Nephrotoxic agents the cidofovir label names: intravenous aminoglycosides (tobramycin,
    # gentamicin, amikacin), amphotericin B, foscarnet, intravenous pentamidine, vancomycin and
    # non-steroidal anti-inflammatory agents.
    _drug("gentamicin", [NEPHROTOXIN], **_AMINOGLYCOSIDE),
    _drug("tobramycin", [NEPHROTOXIN], **_AMINOGLYCOSIDE),
    _drug("amikacin", [NEPHROTOXIN], "arikayce", **_AMINOGLYCOSIDE),
    _drug("streptomycin", [NEPHROTOXIN], **_AMINOGLYCOSIDE),
    _drug("plazomicin", [NEPHROTOXIN], "zemdri", **_AMINOGLYCOSIDE),
    _drug("amphotericin b", [NEPHROTOXIN], "amphotericin", "ambisome", "abelcet", "fungizone"),
    _drug("vancomycin", [NEPHROTOXIN], oral_not_absorbed=True),
    *(
        _drug(name, [NEPHROTOXIN], *brands)
        for name, *brands in (
            ("ibuprofen", "advil", "motrin", "caldolor"),
            ("naproxen", "aleve", "naprosyn", "anaprox"),
            ("ketorolac", "toradol"),
            ("diclofenac",),
            ("indomethacin", "indocin"),
            ("celecoxib", "celebrex"),
            ("meloxicam", "mobic"),
            ("ketoprofen",),
            ("piroxicam", "feldene"),
            ("etodolac",),
            ("nabumetone",),
            ("sulindac",),
            ("flurbiprofen",),
            ("oxaprozin", "daypro"),
            ("diflunisal",),
            ("mefenamic acid",),
        )
    ),
    # Additive marrow toxicity with ganciclovir/valganciclovir (label): mycophenolate (above),
    # zidovudine, trimethoprim-sulfamethoxazole, dapsone, pentamidine, flucytosine.
    _drug("zidovudine", [ARV, MARROW_TOXIC], "retrovir", "azt"),
    _drug("trimethoprim-sulfamethoxazole", [MARROW_TOXIC], "sulfamethoxazole", "trimethoprim sulfamethoxazole",
          "sulfamethoxazole trimethoprim", "co trimoxazole", "cotrimoxazole", "bactrim", "septra", "smx tmp",
          "tmp smx", absorbs=("trimethoprim",)),
    _drug("trimethoprim", [], "primsol"),
    _drug("dapsone", [MARROW_TOXIC]),
    _drug("pentamidine", [MARROW_TOXIC, NEPHROTOXIN], "pentam"),
    _drug("flucytosine", [MARROW_TOXIC], "ancobon"),
    # Seizures with ganciclovir/valganciclovir (label).
    _drug("imipenem-cilastatin", [IMIPENEM], "imipenem", "cilastatin", "primaxin", "recarbrio"),
    # Inducers in the maribavir label.  Fosphenytoin is converted entirely to phenytoin.
    _drug("carbamazepine", [CYP3A_INDUCER], "tegretol", "carbatrol", "equetro", "epitol"),
    _drug("phenytoin", [CYP3A_INDUCER], "dilantin", "phenytek"),
    _drug("fosphenytoin", [CYP3A_INDUCER], "cerebyx"),
    _drug("phenobarbital", [CYP3A_INDUCER], "phenobarbitone", "luminal"),
    _drug("rifampin", [CYP3A_INDUCER], "rifampicin", "rifadin", "rimactane"),
    _drug("rifabutin", [CYP3A_INDUCER], "mycobutin"),
    _drug("st john's wort", [CYP3A_INDUCER], "st johns wort", "saint john's wort", "hypericum"),
    _drug("probenecid", [PROBENECID], "probalan"),
    # Letermovir lowers voriconazole levels (label).
    _drug("voriconazole", [], "vfend"),
    # Antiretrovirals (ingredients; brand combinations are in BRANDS).
    *(
        _drug(name, [ARV], *brands)
        for name, *brands in (
            ("bictegravir",), ("dolutegravir", "tivicay"), ("raltegravir", "isentress"), ("elvitegravir",),
            ("cabotegravir", "vocabria", "apretude"), ("tenofovir", "viread", "vemlidy"),
            ("emtricitabine", "emtriva"), ("abacavir", "ziagen"), ("lamivudine", "epivir"),
            ("efavirenz", "sustiva"), ("rilpivirine", "edurant"), ("doravirine", "pifeltro"),
            ("etravirine", "intelence"), ("nevirapine", "viramune"), ("darunavir", "prezista"),
            ("atazanavir", "reyataz"), ("lopinavir",), ("ritonavir", "norvir"), ("cobicistat", "tybost"),
            ("fostemsavir", "rukobia"), ("maraviroc", "selzentry"), ("enfuvirtide", "fuzeon"),
            ("lenacapavir", "sunlenca"),
        )
    ),
    # Ritonavir in Paxlovid is a booster for a COVID-19 antiviral, not antiretroviral therapy.
    _drug("nirmatrelvir-ritonavir", [], "nirmatrelvir", "paxlovid", absorbs=("ritonavir",)),
)

# Brand combinations -> their ingredients.
BRANDS: Mapping[str, tuple[str, ...]] = {
    "biktarvy": ("bictegravir", "emtricitabine", "tenofovir"),
    "genvoya": ("elvitegravir", "cobicistat", "emtricitabine", "tenofovir"),
    "stribild": ("elvitegravir", "cobicistat", "emtricitabine", "tenofovir"),
    "triumeq": ("abacavir", "dolutegravir", "lamivudine"),
    "dovato": ("dolutegravir", "lamivudine"),
    "juluca": ("dolutegravir", "rilpivirine"),
    "descovy": ("emtricitabine", "tenofovir"),
    "truvada": ("emtricitabine", "tenofovir"),
    "odefsey": ("emtricitabine", "rilpivirine", "tenofovir"),
    "complera": ("emtricitabine", "rilpivirine", "tenofovir"),
    "atripla": ("efavirenz", "emtricitabine", "tenofovir"),
    "symtuza": ("darunavir", "cobicistat", "emtricitabine", "tenofovir"),
    "combivir": ("lamivudine", "zidovudine"),
    "trizivir": ("abacavir", "lamivudine", "zidovudine"),
    "epzicom": ("abacavir", "lamivudine"),
    "kivexa": ("abacavir", "lamivudine"),
    "delstrigo": ("doravirine", "lamivudine", "tenofovir"),
    "symfi": ("efavirenz", "lamivudine", "tenofovir"),
    "cimduo": ("lamivudine", "tenofovir"),
    "prezcobix": ("darunavir", "cobicistat"),
    "evotaz": ("atazanavir", "cobicistat"),
    "kaletra": ("lopinavir", "ritonavir"),
    "cabenuva": ("cabotegravir", "rilpivirine"),
}

BY_INGREDIENT: Mapping[str, Drug] = {drug.ingredient: drug for drug in DRUGS}


def normalise_name(text: str) -> str:
    """'St. John's Wort 300 MG' -> 'st john s wort 300 mg'."""
    return " ".join(re.sub(r"[^a-z0-9+]+", " ", text.lower()).split())


_NAMES: dict[str, tuple[str, ...]] = {}
for _d in DRUGS:
    for _name in _d.names:
        _NAMES[normalise_name(_name)] = (_d.ingredient,)
for _brand, _parts in BRANDS.items():
    _NAMES[_brand] = _parts
_NAME_PATTERN = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(_NAMES, key=len, reverse=True)) + r")\b")


def ingredients_named(texts: Iterable[str]) -> list[str]:
    """The ingredients the texts name, in order of first mention, products' parts folded in."""
    found: list[str] = []
    for text in texts:
        for ingredient in _named_in(text[:fhir.FREE_TEXT_READ]):
            if ingredient not in found:
                found.append(ingredient)
    absorbed = {part for name in found for part in BY_INGREDIENT[name].absorbs}
    return [name for name in found if name not in absorbed]


@fhir.cached_by_text  # drug names come from the EHR's formulary and repeat across calls
def _named_in(text: str) -> tuple[str, ...]:
    return tuple(i for match in _NAME_PATTERN.finditer(normalise_name(text)) for i in _NAMES[match.group()])


def classes_of(ingredients: Iterable[str], route: str | None, dose_form: str | None) -> frozenset[str]:
    """Drug classes of a systemic order, given its route ('iv'/'oral'/None) and dose form."""
    systemic_evidence = route in ("iv", "oral") or dose_form in ("tablet", "capsule", "solution", "injection")
    classes: set[str] = set()
    for name in ingredients:
        drug = BY_INGREDIENT[name]
        if drug.needs_systemic_route and not systemic_evidence:
            continue
        own = set(drug.classes)
        if drug.oral_not_absorbed and (route == "oral" or (route is None and dose_form in ("tablet", "capsule"))):
            own.discard(NEPHROTOXIN)
        classes |= own
    return frozenset(classes)
