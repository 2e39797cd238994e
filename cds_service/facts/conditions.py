"""Conditions and allergies -> populations, CMV state, ganciclovir intolerance, antiviral resistance.

Read from ICD-10-CM and SNOMED CT codes and from text (Condition.code.text and the displays of
codings not recognised by code).  Only current, confirmed conditions count: the verification status,
when given, must be confirmed (not provisional, differential, unconfirmed, refuted or entered in
error, even beside "confirmed"); the clinical status, when given, must read active, recurrence or
relapse (by code, or by its text when it has no code), and one that cannot be read does not count; a
missing clinical status counts as active unless the condition has abated.  Text matching prefers
"unknown" to a guess: a negated, uncertain, questioned or (for CMV) past or healed mention ("no CMV
colitis", "CMV colitis ruled out", "suspected CMV pneumonitis", "CMV colitis?", "s/p CMV colitis",
"CMV retinitis in remission") establishes nothing, nor does a mention of someone else ("family
history of HIV", "mother had kidney transplant", "donor HIV positive"); a relative named as the
donor is not someone else ("allogeneic HSCT (sibling donor) complicated by CMV pneumonitis").  Site
words must sit right next to "CMV" ("CMV colitis", "colitis due to CMV"), so "CMV viremia in a
patient with ulcerative colitis" is not CMV colitis.
A past transplant is still a transplant ("history of kidney transplant", "s/p kidney transplant"
are SOT kidney); a planned one or a donation is not ("on kidney transplant list", "kidney
transplant donor"), though what only a recipient has is ("kidney transplant donor-specific
antibodies").  Its date is the condition's onset, never the date it was recorded.
Resistance is read as documented: the genes a mutation is named in ("UL54 mutation") and the anti-CMV
drugs named resistant ("foscarnet-resistant CMV", "resistant to ganciclovir and cidofovir").
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from typing import Any, Iterable, Mapping

from cds_service.facts import codes, drugs, fhir
from cds_service.facts.model import RENAL_REPLACEMENT_LABELS, RESISTANCE_GENES, ConditionEvidence, ConditionFacts
from cds_service.frozen import frozen


@frozen
class Effect:
    # organ, hsct, hiv, ibd, acute-severe-uc, steroid-resistant-uc, cgvhd, site, infection, h32,
    # resistant-drug, resistance-gene, intolerance, renal-replacement
    kind: str
    value: str  # organ / ibd type / disease site / drug / gene; "" otherwise
    label: str  # what it establishes, in words


def transplant_label(organ: str) -> str:
    """The evidence label of a transplanted organ ('kidney transplant')."""
    return f"{organ} transplant"


def _organ(organ: str, complication: bool = False) -> Effect:
    """A transplanted organ; from a complication code (T86), labelled so: its onset is the
    complication's, not the transplant's date."""
    return Effect("organ", organ, transplant_label(organ) + (" complication" if complication else ""))


def _site(site: str, label: str) -> Effect:
    return Effect("site", site, label)


HSCT = Effect("hsct", "", "hematopoietic stem cell transplant")
ACUTE_SEVERE_UC = Effect("acute-severe-uc", "", "acute severe ulcerative colitis")
STEROIDS_FAILING_UC = Effect("steroid-resistant-uc", "", "ulcerative colitis not responding to corticosteroids")
HSCT_COMPLICATION = Effect("hsct", "complication", "complication of bone marrow transplant")
HIV = Effect("hiv", "", "HIV")
CGVHD = Effect("cgvhd", "", "chronic GVHD")
# A T-cell-depleted graft (in vitro, or in vivo by ATG or alemtuzumab in conditioning): the HSCT monitoring window's
# extension to a year.  Said by the transplant's own record; the depleting drugs' orders, given in conditioning, are
# long past the orders read by day 100.
T_CELL_DEPLETION = Effect("t-cell-depletion", "", "T-cell depletion")
INFECTION = Effect("infection", "", "CMV infection")
INTOLERANCE = Effect("intolerance", "", "ganciclovir/valganciclovir intolerance")
H32 = Effect("h32", "", "chorioretinal disorder in disease classified elsewhere")
DIALYSIS = Effect("renal-replacement", "dialysis", RENAL_REPLACEMENT_LABELS["dialysis"])
CRRT = Effect("renal-replacement", "crrt", RENAL_REPLACEMENT_LABELS["crrt"])
PERITONEAL_DIALYSIS = Effect("renal-replacement", "peritoneal", RENAL_REPLACEMENT_LABELS["peritoneal"])
OTHER_CMV = _site("other", "other CMV disease")

# ICD-10-CM code prefixes (dots removed).  Z94/T86 per the ICD-10-CM tabular list; B25.8 covers
# encephalitis, retinitis (with H32) and colitis, which have no code of their own.
ICD10_RULES: tuple[tuple[str, tuple[Effect, ...]], ...] = (
    ("Z940", (_organ("kidney"),)),
    ("Z941", (_organ("heart"),)),
    ("Z942", (_organ("lung"),)),
    ("Z943", (_organ("heart"), _organ("lung"))),
    ("Z944", (_organ("liver"),)),
    ("Z9481", (HSCT,)),  # bone marrow transplant status
    ("Z9482", (_organ("intestine"),)),
    ("Z9483", (_organ("pancreas"),)),
    ("Z9484", (HSCT,)),  # stem cells transplant status
    ("T860", (HSCT_COMPLICATION,)),  # complications of bone marrow transplant
    ("T861", (_organ("kidney", complication=True),)),
    ("T862", (_organ("heart", complication=True),)),
    ("T863", (_organ("heart", complication=True), _organ("lung", complication=True))),
    ("T864", (_organ("liver", complication=True),)),
    ("T8681", (_organ("lung", complication=True),)),
    ("T8685", (_organ("intestine", complication=True),)),
    ("B20", (HIV,)),
    ("B21", (HIV,)), ("B22", (HIV,)), ("B23", (HIV,)), ("B24", (HIV,)),  # WHO ICD-10 HIV disease
    ("Z21", (HIV,)),  # asymptomatic HIV infection status
    ("Z992", (DIALYSIS,)),  # dependence on renal dialysis
    ("K50", (Effect("ibd", "crohns", "Crohn's disease"),)),
    ("K51", (Effect("ibd", "ulcerative-colitis", "ulcerative colitis"),)),
    ("D89811", (CGVHD,)),
    ("D89812", (CGVHD,)),  # acute on chronic
    ("B250", (_site("pneumonitis", "CMV pneumonitis"),)),
    ("B251", (_site("hepatitis", "CMV hepatitis"),)),
    ("B252", (_site("other", "CMV pancreatitis"),)),
    ("B258", (OTHER_CMV,)),
    ("B259", (INFECTION,)),
    ("H32", (H32,)),
)

SNOMED_RULES: Mapping[str, tuple[Effect, ...]] = {
    "28944009": (INFECTION,),  # Cytomegalovirus infection
    "22455005": (_site("retinitis", "CMV retinitis"),),
    "7678002": (_site("pneumonitis", "CMV pneumonitis"),),  # UNVERIFIED ("?" in the reference)
}
# Codes the reference marks "?": read, and the evidence says so (the clinician sees what it rests on).
UNVERIFIED_SNOMED = frozenset({"7678002"})

# ---------------------------------------------------------------------------------------------
# Text rules.  Patterns run on fhir.normalise_words() text: lower case, '-', '/', apostrophes as spaces.

_CMV = r"(?:cmv|cytomegalo\s*virus|cytomegaloviral|human\s+herpes\s*virus\s+5|hhv\s*5)"
_SITE_WORDS = {
    "retinitis": r"retinitis|chorioretinitis|retinopathy",
    "gi": r"colitis|enteritis|enterocolitis|esophagitis|oesophagitis|gastritis|gastroenteritis|duodenitis"
          r"|ileitis|proctitis|gastrointestinal\s+disease|gi\s+disease",
    "pneumonitis": r"pneumonitis|pneumonia",
    "hepatitis": r"hepatitis",
    "cns": r"encephalitis|meningoencephalitis|encephalomyelitis|myelitis|ventriculitis|polyradiculomyelitis",
    "other": r"pancreatitis|nephritis|myocarditis|cystitis|adrenalitis|end\s+organ\s+disease"
             r"|tissue\s+invasive\s+disease|disease",
}
_SITE_LABELS = {
    "retinitis": "CMV retinitis", "gi": "CMV gastrointestinal disease", "pneumonitis": "CMV pneumonitis",
    "hepatitis": "CMV hepatitis", "cns": "CMV CNS disease", "other": "other CMV disease",
}
_ORGAN_WORDS = {
    "kidney": r"kidney|renal",
    "liver": r"liver|hepatic",
    "heart": r"heart|cardiac",
    "lung": r"lungs?|pulmonary",
    "pancreas": r"pancreas|pancreatic",
    "intestine": r"intestinal|intestine|small\s+bowel|multivisceral",
}
_DRUG = r"(?:(?:val)?ganciclovir|valcyte|cytovene)"

# Cues that make a mention say nothing about the patient now: negated, uncertain or asked.
_NEGATION = (
    r"no|not|negative\s+for|neg\s+for|without|denies|denied|free\s+of|absence\s+of|absent|"
    r"rule\s+out|ruled\s+out|r\s+o|excluded|unlikely|never|possible|possibly|probable|suspected|suspect|"
    r"suspicion|concern|concerning|evaluate|evaluating|differential|ddx|consider|considered|cannot|"
    r"query|questionable|presumed|presumptive|risk\s+of|risk\s+for|at\s+risk|"
    r"screening|screen|exposure|exposed"
)
# Past ("s/p" is status post), or ended: for a CMV state or a treatment now, not current.
_PAST = (
    r"history\s+of|h\s+o|hx\s+of|hx|past|prior|previous|previously|old|remote|s\s+p|status\s+post|"
    r"prophylaxis|prevention"
)
_ENDED = r"resolved|inactive|remission|healed|quiescent|no\s+longer"
_NOT_YET = (
    r"candidate|awaiting|waiting|wait\s+list|waitlist|waitlisted|list|listed|listing|evaluation|evaluated|work\s*up|"
    r"planned|future"
)
_AFTER = (
    r"negative|neg|ruled\s+out|excluded|not\s+detected|not\s+confirmed|unlikely|absent|wild\s+type|"
    r"screen|screening|test|testing|exposure|prophylaxis|prep|pep"
)
# About someone else: a relative earlier in the match's clause ("Mother had kidney transplant"), or
# earlier in the sentence when they head a list ("Family history: diabetes, HIV", "Mother: HIV");
# or right after in "in/of <relative>" ("HIV in family").  A relative named as the donor is not:
# the graft is the patient's, and so is the rest ("matched sibling donor HSCT", "HSCT (donor:
# mother) complicated by CMV colitis", "kidney transplant from his mother").
_RELATIVE = (
    r"family|fhx|relatives?|mother|mom|father|dad|parents?|brother|sister|siblings?|son|daughter|"
    r"husband|wife|spouse|partner|boyfriend|girlfriend|grandmother|grandfather|grandparents?|aunt|uncle|cousin|"
    r"niece|nephew|twin|friend"
)
_WHOSE = r"(?:the|a|his|her|their|patient\s+s)"
_RELATIVE_MENTION = re.compile(
    rf"(?P<donor_before>\bdonor\s*:?\s*(?:{_WHOSE}\s+)?|\bfrom\s+(?:{_WHOSE}\s+)?)?"
    rf"\b(?P<relative>{_RELATIVE})\b(?P<donor_after>\s+donors?\b)?(?P<heading>\s*:)?(?P<who>\s*,?\s*who(?:se)?\b)?"
)
_FAMILY_HISTORY = frozenset({"family", "fhx"})  # heads a list, colon or not ("family history of diabetes, HIV")
_OTHER_PERSON_AFTER = re.compile(rf"\s*(?:in|of)\s+(?:{_WHOSE}\s+)?(?:{_RELATIVE})\b")
# The donor's, named right after a condition that is not a transplant: "HIV in donor", "HIV (donor)".
_DONOR_AFTER = re.compile(rf"\s*(?:(?:in|of)\s+(?:{_WHOSE}\s+)?|\(\s*)donors?\b")
# A verb saying a relative named as the donor has the condition that follows ("donor mother has HIV");
# other words ("from his brother with CMV retinitis") leave it the patient's.
_HAS = frozenset({"has", "had", "is", "was"})
# Words that may come before a relative heading a sentence: "Mother, ...", "His sister: ...".
_SENTENCE_HEAD = re.compile(rf"\s*(?:{_WHOSE}\s+)?$")
# The donor's own condition, named right after the donor: "donor HIV positive", "sibling donor: HIV",
# "donor's HIV".  Not for a transplant, which a donor before it describes ("living donor kidney transplant").
_DONOR_S = re.compile(r"\bdonors?\s*(?::|\s+s|\s+is)?\s*$")
_GRAFTS = frozenset({"organ", "hsct"})
# Asked, not established: "CMV colitis?", "?CMV colitis", "CMV colitis (?)".
_QUESTION_BEFORE = re.compile(r"\?\s*$")
_QUESTION_AFTER = re.compile(r"\s*\(?\s*\?")


@frozen
class TextRule:
    effect: Effect
    pattern: re.Pattern
    before: re.Pattern  # cues in the words before the match that cancel it
    after: re.Pattern  # cues right after it that cancel it


def _cues(*parts: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b")


# Cue sets: a CMV state must be current ("history of CMV colitis", "healed CMV retinitis" are not
# active disease); a population must be established ("kidney transplant candidate" is not a
# recipient) and lasts ("s/p kidney transplant" is one); a documented intolerance or resistance
# stays relevant however old.
_CUES = {
    "cmv": (_cues(_NEGATION, _PAST, _ENDED), _cues(_AFTER, _ENDED)),
    # Before: "donor for/to" ("donor for kidney transplant") and "pre" ("pre-transplant"); a donor
    # otherwise describes the graft ("living donor kidney transplant", "matched unrelated donor
    # HSCT"), and "pre-emptive" is therapy, not "before".  A donor named right after the transplant
    # words is the patient: see _NOT_DONOR.
    "population": (_cues(_NEGATION, _NOT_YET, r"donor\s+(?:for|to)", r"pre(?!\s+emptive)"), _cues(_AFTER, _NOT_YET)),
    "drug": (_cues(_NEGATION), _cues(_AFTER)),
    "resistance": (_cues(_NEGATION), _cues(_AFTER, "none", "pending", r"not\s+tested")),
    # A treatment the patient is on now (dialysis): not planned, stopped, past or given up ("off
    # dialysis", "dialysis catheter removed").
    "state": (
        _cues(_NEGATION, _PAST, _ENDED, _NOT_YET, "pre", "off"),
        _cues(_AFTER, _ENDED, _NOT_YET, "discontinued", "stopped", "withdrawn", "recovered", "removed",
              r"not\s+(?:required|needed)"),
    ),
}
_UC = r"(?:ulcerative\s+(?:colitis|proctitis|proctosigmoiditis|pancolitis)|uc)"
_SEVERITY_STOP = (
    r"(?:no|not|without|mild|moderate|to|previous|prior|past|history|remission|resolved|quiescent|inactive)\b"
)
_SEVERE_FLARE = (
    r"(?:(?:acute\s+severe|fulminant)(?:\s+(?:flare|exacerbation|relapse|attack|episode|colitis|disease)\b|(?=\s*(?:[,;.)]|$)))"
    r"|severe\s+(?:flare|exacerbation|relapse|attack)\b)"
)
_STEROIDS = (
    r"(?:(?:iv|intravenous|oral)\s+)?(?:(?:cortico)?steroids?|hydrocortisone|methylprednisolone|prednisolone|prednisone)\b"
)
_NOT_HSCT_WORD = r"(?!(?:marrow|bone|stem|cell|cells|after|post|following|from|in|with|for|of)\b)"
# "Kidney transplant donor", "HSCT donor": the patient gave the graft.  A donor after a comma or in
# brackets describes the patient's graft ("kidney transplant, donor CMV+", "HSCT (unrelated donor)"),
# as do what only a recipient has: the donor's antibodies, lymphocytes or cells in the patient.
_RECIPIENT_OF_DONOR = r"specific\s+antibod\w*|dsa|lymphocyte\s+infusions?|dli|(?:t\s+cells?\s+)?chimerism"
_NOT_DONOR = rf"(?!\s+don(?:or|ation)\b(?!\s+(?:{_RECIPIENT_OF_DONOR})\b))"


def _rule(effect, pattern: str, cues: str) -> TextRule:
    before, after = _CUES[cues]
    return TextRule(effect, re.compile(pattern), before, after)


_HIV_RULE = _rule(
    HIV,
    r"\bhiv\b|\bhuman\s+immunodeficiency\s+virus\b|\bacquired\s+immun\w*\s+deficiency\s+syndrome\b"
    r"|\bacquired\s+immunodeficiency\s+syndrome\b",
    "population",
)
_INTOLERANCE_RULE = _rule(
    INTOLERANCE,
    rf"\b{_DRUG}(?:\s+\w+){{0,2}}?\s+(?:intoleran\w*|allerg\w*|adverse\s+(?:reaction|effect|event)s?|induced"
    r"|associated|toxicity|reaction|neutropenia|cytopenia|pancytopenia|myelosuppression|leukopenia"
    r"|thrombocytopenia)\b"
    rf"|\b(?:intoleran\w*|allerg\w*|adverse\s+(?:reaction|effect|event)s?|toxicity|reaction)\s+"
    rf"(?:to|from|with|due\s+to)\s+{_DRUG}\b",
    "drug",
)

# Allergies the cidofovir label names as contraindications: to probenecid (given with every dose) and
# to other sulfa-containing medications.  The drugs that are one (by code, or by their names and
# brands in facts/drugs.py), and each allergen's further words.
_ALLERGEN_OF_DRUG = {"probenecid": "probenecid", "trimethoprim-sulfamethoxazole": "sulfa"}
_ALLERGEN_WORDS = {
    "probenecid": ("benemid",),
    "sulfa": (
        "sulfa", "sulpha", r"sulfonamides?", r"sulphonamides?", "sulphamethoxazole", "sulfadiazine", "sulfasalazine",
        "sulfisoxazole",
    ),
}
_ALLERGEN_PATTERNS = {
    allergen: "|".join([
        *(re.escape(n).replace(r"\ ", r"\s*") for drug, a in _ALLERGEN_OF_DRUG.items() if a == allergen
          for n in drugs.BY_INGREDIENT[drug].names),
        *words,
    ])
    for allergen, words in _ALLERGEN_WORDS.items()
}


def allergy_label(allergen: str) -> str:
    return f"{allergen} allergy"


# What an allergy record's names are read for: (allergen, words); None is ganciclovir intolerance.
_ALLERGY_NAMES = (
    (None, re.compile(rf"\b{_DRUG}\b")),
    *((allergen, re.compile(rf"\b(?:{words})\b")) for allergen, words in _ALLERGEN_PATTERNS.items()),
)


# Resistance (clinical reference section 9): the genes are model.RESISTANCE_GENES.
# Drugs as a record names them resistant, brands included; valganciclovir is ganciclovir's prodrug.
_RESISTANCE_DRUGS = {
    "ganciclovir": _DRUG,
    **{
        drug: "(?:" + "|".join(map(re.escape, drugs.BY_INGREDIENT[drug].names)) + ")"
        for drug in ("foscarnet", "cidofovir", "maribavir", "letermovir")
    },
}
_ANY_RESISTANCE_DRUG = "(?:" + "|".join(_RESISTANCE_DRUGS.values()) + ")"
_AND = r"\s+(?:and|or)\s+"  # lists: "ganciclovir and foscarnet resistant", "mutations in UL97 and UL54"
_MUTATION = r"(?:mutation|mutant|variant|substitution|deletion)s?"
_NOT_NEGATED = r"(?!(?:no|not|negative|neg|wild|without|none)\b)"  # "UL97 negative, UL54 mutation"
_NOT_SUSCEPTIBLE = r"(?!\s+(?:susceptib\w*|sensitive)\b)"  # "resistant to ganciclovir and foscarnet susceptible"
_RESISTANT_CMV = rf"(?:\s+(?:{_CMV}|infection|vir(?:a)?emia|dna(?:a)?emia|disease))*"


# Evidence labels: the cards quote the evidence for one drug's resistance by them.
def resistant_label(drug: str) -> str:
    return f"{drug}-resistant CMV"


def mutation_label(gene: str) -> str:
    return f"CMV {gene} resistance mutation"


def _gene_pattern(gene: str) -> str:
    ul = rf"ul\s*{gene[2:]}"
    return (
        rf"\b{ul}\b(?:\s+{_NOT_NEGATED}\w+){{0,3}}?\s+(?:{_MUTATION}|resistance|resistant)\b"
        rf"|\b{ul}\s+[a-z]\d{{2,4}}[a-z]\b"  # an amino-acid substitution: "UL97 A594V"
        rf"|\b{_MUTATION}\s+(?:in\s+)?(?:the\s+)?(?:ul\s*\d+{_AND})*{ul}\b"
        # "ganciclovir-resistant CMV (UL97 A594V ...)": the substitution is kept in the words shown
        rf"|\bresist\w*{_RESISTANT_CMV}\s*:?\s*\(?\s*{ul}(?:\s+[a-z]\d{{2,4}}[a-z])?\b"
    )


_RESISTANCE_RULES = (
    *(
        _rule(
            Effect("resistant-drug", drug, resistant_label(drug)),
            rf"\b{words}(?:{_AND}{_ANY_RESISTANCE_DRUG})*\s+resist\w*"
            rf"|\bresist\w*\s+(?:to\s+)?(?:{_ANY_RESISTANCE_DRUG}{_AND})*{words}\b{_NOT_SUSCEPTIBLE}",
            "resistance",
        )
        for drug, words in _RESISTANCE_DRUGS.items()
    ),
    *(
        _rule(Effect("resistance-gene", gene, mutation_label(gene)), _gene_pattern(gene), "resistance")
        for gene in RESISTANCE_GENES
    ),
)


TEXT_RULES: tuple[TextRule, ...] = (
    *(
        _rule(
            _organ(organ),
            rf"\b(?:{words})\s+(?:allo)?graft\b{_NOT_DONOR}"
            rf"|\b(?:{words})(?:\s+{_NOT_HSCT_WORD}\w+){{0,2}}\s+transplant(?:ation|ed)?\b{_NOT_DONOR}"
            rf"|\btransplant(?:ed)?\s+(?:{words})\b{_NOT_DONOR}",
            "population",
        )
        for organ, words in _ORGAN_WORDS.items()
    ),
    _rule(
        HSCT,
        r"(?:\b(?:h(?:a)?ematopoietic|h(?:a)?emopoietic)\s+(?:stem\s+|progenitor\s+)?cell\s+transplant\w*"
        r"|\bstem\s+cell\s+transplant\w*|\bbone\s+marrow\s+transplant\w*|\bcord\s+blood\s+transplant\w*"
        r"|\b(?:hsct|bmt|pbsct|allo\s*hsct|allo\s*sct|allo\s*hct|auto\s*hsct|auto\s*sct)\b"
        rf"|\b(?:allogeneic|allogenic|autologous)(?:\s+\w+){{0,3}}?\s+(?:transplant\w*|sct|hct|hsct|bmt)\b)\b{_NOT_DONOR}",
        "population",
    ),
    _HIV_RULE,
    # Renal replacement therapy now: "ESRD on hemodialysis", "peritoneal dialysis"; not "pre-dialysis
    # CKD", "dialysis discontinued" or "history of dialysis".  CRRT first: it names dialysis too.
    _rule(
        CRRT,
        r"\bcrrt\b|\bcvvh(?:d|df)?\b|\bcontinuous\s+(?:veno\s+venous\s+)?(?:renal\s+replacement|h(?:a)?emo\s*(?:dia)?filtration"
        r"|h(?:a)?emodialysis)\b",
        "state",
    ),
    # Peritoneal dialysis before dialysis: it names dialysis too, and the labels' dialysis row is hemodialysis's.
    _rule(PERITONEAL_DIALYSIS, r"\b(?:peritoneal\s+dialysis|capd|ccpd)\b", "state"),
    _rule(DIALYSIS, r"\b(?:h(?:a)?emo\s*dialysis|dialysis)\b", "state"),
    _rule(Effect("ibd", "crohns", "Crohn's disease"), r"\bcrohn", "population"),
    _rule(
        Effect("ibd", "ulcerative-colitis", "ulcerative colitis"),
        r"\bulcerative\s+(?:colitis|proctitis|proctosigmoiditis|pancolitis)\b",
        "population",
    ),
    _rule(Effect("ibd", "", "inflammatory bowel disease"), r"\binflammatory\s+bowel\s+disease\b|\bibd\b", "population"),
    # A current acute severe flare of UC, and UC that is not responding to corticosteroids: together, the
    # brief makes CMV screening mandatory.  "UC, ... acute severe flare" may not cross a negating, past
    # or milder word ("UC, not acute severe", "moderate to severe"), nor run on past the next clause.
    _rule(
        ACUTE_SEVERE_UC,
        rf"\basuc\b|\b(?:acute\s+severe|severe\s+acute|fulminant)\s+{_UC}\b"
        # "UC, acute severe flare", or "UC; acute severe flare" (the next clause, and nothing else in it)
        rf"|\b{_UC}\b(?:(?:[ ,]+(?!{_SEVERITY_STOP})[a-z]+){{0,3}}?[ ,]+|\s*[;:]\s*){_SEVERE_FLARE}",
        "state",
    ),
    _rule(
        STEROIDS_FAILING_UC,
        rf"\b{_STEROIDS}\s+(?:refractor\w*|resistan\w*|failure|non\s*respon\w*|unresponsive)"
        rf"|\b(?:not|non|no|poorly|failing\s+to|failed\s+to|failure\s+to)\s+respon\w*\s+(?:to\s+)?{_STEROIDS}"
        rf"|\b(?:refractory|resistant|unresponsive)\s+to\s+{_STEROIDS}|\bfailure\s+of\s+{_STEROIDS}",
        "state",
    ),
    _rule(CGVHD, r"\bchronic\s+(?:graft\s+(?:versus|vs|v)\.?\s+host|gvhd?)\b|\bcgvhd\b", "population"),
    _rule(
        T_CELL_DEPLETION,
        # Not "non-T-cell-depleted", nor a negation after it ("ATG not given", "T-cell depletion: none", "ATG-free").
        r"(?<!non-)(?<!non )(?<!non)\b(?:t[\s-]*cell[\s-]*deplet\w*|cd34[\s+-]*(?:selected|selection|enriched)"
        r"|alemtuzumab|campath|anti[\s-]*thymocyte\s+globulin|thymoglobulin|atgam|grafalon|atg)\b"
        r"(?![\s:-]*(?:free|none|no|not)\b)",
        "population",
    ),
    *(
        _rule(
            _site(site, _SITE_LABELS[site]),
            rf"\b{_CMV}\s+(?:(?:associated|related|induced|tissue|invasive|end|organ|acute|active|severe)\s+){{0,2}}"
            rf"(?:{words})\b"
            rf"|\b(?:{words})\s+(?:due\s+to|caused\s+by|from|secondary\s+to)\s+{_CMV}\b",
            "cmv",
        )
        for site, words in _SITE_WORDS.items()
    ),
    _rule(
        INFECTION,
        rf"\b{_CMV}\s+(?:dna\s+)?(?:vir(?:a)?emia|dna(?:a)?emia|infection|reactivation|antigen(?:a)?emia"
        rf"|replication|syndrome|viral\s+load)\b"
        rf"|\b{_CMV}\s+(?:dna\s+)?pcr\s+(?:positive|detected)\b",
        "cmv",
    ),
    *_RESISTANCE_RULES,
    _INTOLERANCE_RULE,
)

_AIDS = re.compile(r"\bAIDS\b")  # upper case only: "hearing aids" is not AIDS
_CLAUSE_END = re.compile(r"[.;:,()\n]")
_SENTENCE_END = re.compile(r"[.;\n]")


# Mentions of one condition read per name: each is judged against the words before it in its sentence,
# so a name repeating a cancelled mention ("mother HIV, " x 45) would cost that many rescans.
_MATCHES_READ = 5


def match_text(raw: str) -> tuple[tuple[Effect, str], ...]:
    """Effects a free-text condition name establishes, each with the words that matched."""
    return _match_text(raw[:fhir.FREE_TEXT_READ])


@fhir.cached_by_text
def _match_text(raw: str) -> tuple[tuple[Effect, str], ...]:
    words = fhir.normalise_words(raw)
    found: list[tuple[Effect, str]] = []
    for rule in TEXT_RULES:
        for match in itertools.islice(rule.pattern.finditer(words), _MATCHES_READ):
            if not _cancelled(words, match.start(), match.end(), rule):
                found.append((rule.effect, raw[match.start():match.end()]))
                break
    for match in itertools.islice(_AIDS.finditer(raw), _MATCHES_READ):
        if not _cancelled(words, match.start(), match.end(), _HIV_RULE):
            found.append((HIV, match.group()))
            break
    return tuple(found)


def _cancelled(words: str, start: int, end: int, rule: TextRule) -> bool:
    """A cue in the clause before the match (last six words), or right after it in the same
    sentence (within four words, or as the first word after a comma) cancels the match; so does a
    question mark next to it, or another person named before it (_RELATIVE_MENTION) or right after it."""
    clause_start = max((m.end() for m in _CLAUSE_END.finditer(words, 0, start)), default=0)
    before = " ".join(words[clause_start:start].split()[-6:])
    if rule.before.search(before) or _QUESTION_BEFORE.search(words[clause_start:start]):
        return True
    sentence_start = max((m.end() for m in _SENTENCE_END.finditer(words, 0, start)), default=0)
    if _someone_else_before(words, sentence_start, clause_start, start, rule):
        return True
    sentence_end = _SENTENCE_END.search(words, end)
    after = words[end:sentence_end.start() if sentence_end else len(words)]
    if _QUESTION_AFTER.match(after) or _OTHER_PERSON_AFTER.match(after):
        return True
    if rule.effect.kind not in _GRAFTS and _DONOR_AFTER.match(after):
        return True
    head, _, tail = after.partition(",")
    near = " ".join(head.split()[:4])
    first_after_comma = " ".join(tail.split()[:2])
    return bool(rule.after.search(near) or (tail and rule.after.match(first_after_comma)))


def _someone_else_before(words: str, sentence_start: int, clause_start: int, start: int, rule: TextRule) -> bool:
    """Someone else's condition: a relative in the match's own clause, heading the sentence ("Mother,
    who had a kidney transplant, has HIV"; "Sister: HIV"), or heading a family history; a relative named
    as the donor ("(sibling donor)", "from his mother": the patient's graft) only for a condition that
    is not a transplant and that it "has" ("donor mother has HIV") or that follows "who"; and the
    donor right before such a condition ("donor HIV positive")."""
    graft = rule.effect.kind in _GRAFTS
    for mention in _RELATIVE_MENTION.finditer(words, sentence_start, start):
        if mention["donor_before"] or mention["donor_after"]:
            said_of = words[mention.end():start].split()  # "donor mother has HIV": hers
            if not graft and (mention["who"] or (len(said_of) == 1 and said_of[0] in _HAS)):
                return True
            continue
        heads = _SENTENCE_HEAD.match(words, sentence_start, mention.start("relative")) is not None
        if (mention.start("relative") >= clause_start or heads or mention["heading"] or mention["who"]
                or mention["relative"] in _FAMILY_HISTORY):
            return True
    return not graft and bool(_DONOR_S.search(words, sentence_start, start))


# ---------------------------------------------------------------------------------------------
# Status


def _status_codes(value: Any) -> set[str]:
    """Codes of a status given as a string (DSTU2/STU3) or a CodeableConcept (R4)."""
    if isinstance(value, str):
        return {value.strip().lower()}
    return {code.lower() for _, code, _ in fhir.codings(value) if code}


@fhir.cached_by_json  # a handful of status concepts, on every condition of the record
def _status_words(value: Any) -> frozenset[str]:
    """A condition status's codes, else its text ({"text": "Resolved"}: resolved)."""
    found = _status_codes(value)
    concept = fhir.mapping(value)
    words = fhir.text(concept.get("text")) if concept and not found else None
    return frozenset(found or ({" ".join(words.lower().split())} if words else set()))


# A condition counts only when confirmed, or when no verification is given; a provisional,
# differential, unconfirmed or unknown one is not established.  "confirmed" may come with other
# codings of it (SNOMED CT 410605003 "Confirmed present" in GECCO-style profiles), never with a code
# that contradicts it; SNOMED CT 410605003 alone is confirmed too.
_CONFIRMED = "confirmed"
_SNOMED_CONFIRMED_PRESENT = "410605003"
# Clinical statuses that mean "now" (R4, STU3, DSTU2); any other, or a status that cannot be read,
# does not count: a condition is not guessed to be current.
_CURRENT = {"active", "recurrence", "relapse"}
_NOT_CURRENT = {"inactive", "remission", "in remission", "resolved"}
_ABATEMENT = (
    "abatementDateTime", "abatementAge", "abatementPeriod", "abatementRange", "abatementString", "abatementDate",
)


@fhir.cached_by_json
def _confirmed(verification: Any) -> bool:
    """Confirmed, and contradicted by nothing: HL7 "confirmed" or SNOMED CT "Confirmed present", with
    no other status code (HL7 provisional, refuted, ... or another SNOMED qualifier such as "Definitely
    NOT present" or "Suspected").  A code of another system is a local code and is not read."""
    codings = [(system, (code or "").lower()) for system, code, _ in fhir.codings(verification)]
    if not codings:
        return _status_words(verification) == {_CONFIRMED}  # a DSTU2/STU3 code, or a status given only as text
    confirming = [c for c in codings if c[1] == _CONFIRMED or (c[0] in codes.SNOMED and c[1] == _SNOMED_CONFIRMED_PRESENT)]
    contradicting = [
        c for c in codings if c not in confirming and (c[1] in _VERIFICATION_CODES or c[0] in codes.SNOMED)
    ]
    return bool(confirming) and not contradicting


# The HL7 verification statuses (R4, STU3) other than confirmed.
_VERIFICATION_CODES = frozenset({"unconfirmed", "provisional", "differential", "refuted", "entered-in-error", "unknown"})


def is_active(condition: Mapping[str, Any]) -> bool:
    verification = condition.get("verificationStatus")
    if verification is not None and not _confirmed(verification):
        return False
    clinical = condition.get("clinicalStatus")
    if clinical is not None:
        words = _status_words(clinical)
        return bool(words & _CURRENT) and not words & _NOT_CURRENT
    return not (condition.get("abatementBoolean") is True or any(condition.get(k) for k in _ABATEMENT))


# An allergy counts unless refuted, entered in error or over: an unconfirmed one still counts (a
# warning on a drug the patient may be allergic to is the cautious side).
_EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}


def _allergy_active(allergy: Mapping[str, Any]) -> bool:
    statuses = (
        _status_codes(allergy.get("verificationStatus"))
        | _status_codes(allergy.get("clinicalStatus"))
        | _status_codes(allergy.get("status"))  # DSTU2
    )
    return not (statuses & (_EXCLUDED_VERIFICATION | {"inactive", "resolved"}))


# ---------------------------------------------------------------------------------------------
# Reading


def code_effects(system: str | None, code: str | None) -> tuple[Effect, ...]:
    if not system or not code:
        return ()
    if system in codes.ICD10:
        key = code.upper().replace(".", "").replace(" ", "")
        for prefix, effects in ICD10_RULES:
            if key.startswith(prefix):
                return effects
    elif system in codes.SNOMED:
        return SNOMED_RULES.get(code, ())
    return ()


def _matched_by(system: str, code: str) -> str:
    if system in codes.SNOMED:
        unverified = " (a code the clinical reference marks unverified)" if code in UNVERIFIED_SNOMED else ""
        return f"SNOMED CT {code}{unverified}"
    if system in codes.ICD10[:2]:
        return f"ICD-10-CM {code}"
    return f"ICD-10 {code}"


@fhir.cached_by_json
def _concept_effects(concept: Mapping[str, Any]) -> tuple[tuple[tuple[Effect, str], ...], tuple[str, ...]]:
    """(each effect of a condition's code concept, with how it was matched; the names read for it: its text
    and the displays of codings no rule knows).  Problem lists repeat the same concepts: read once each."""
    matches: list[tuple[Effect, str]] = []
    unrecognised_names: list[str] = []
    for system, code, display in fhir.codings(concept):
        effects = code_effects(system, code)
        matches.extend((effect, _matched_by(system, code)) for effect in effects)
        if not effects and display:
            unrecognised_names.append(display)
    names = [t for t in [fhir.text(concept.get("text"))] if t] + unrecognised_names
    for name in dict.fromkeys(names):
        matches.extend((effect, f"text '{words}'") for effect, words in match_text(name))
    return tuple(matches), tuple(names)


def read_conditions(conditions: Iterable[Any], allergies: Iterable[Any]) -> tuple[ConditionFacts, int]:
    """-> (facts, number of resources skipped as unreadable)."""
    builder = _Builder()
    skipped = 0
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("code"), dict):
            skipped += 1
            continue
        try:
            if is_active(condition):
                builder.add_condition(condition)
        except Exception as exc:  # noqa: BLE001 - defence in depth: the readers are total
            fhir.log_unexpected("Condition", exc)
            skipped += 1
    for allergy in allergies:
        if not isinstance(allergy, dict):
            skipped += 1
            continue
        try:
            if _allergy_active(allergy):
                builder.add_allergy(allergy)
        except Exception as exc:  # noqa: BLE001
            fhir.log_unexpected("AllergyIntolerance", exc)
            skipped += 1
    return builder.facts(), skipped


class _Builder:
    def __init__(self) -> None:
        self.populations: set[str] = set()
        self.organs: set[str] = set()
        self.organ_onsets: dict[str, date] = {}  # organ -> newest onset of its transplant (not a complication)
        self.hsct_onsets: list[date] = []  # recordedDate is when the entry was made: never the transplant's date
        self.disease_onsets: list[date] = []  # newest wins: an old episode still on record does not date this one
        self.ibd_types: set[str] = set()
        self.chronic_gvhd = False
        self.severe_flare = False
        self.steroids_failing_uc = False
        self.renal_replacement: set[str] = set()
        self.sites: set[str] = set()
        self.infection = False
        self.intolerance = False
        self.allergies: set[str] = set()
        self.resistant_drugs: set[str] = set()
        self.resistance_genes: set[str] = set()
        self.genes_with_drug: set[str] = set()  # named in a record with a resistant drug the gene affects
        self.genes_alone: set[str] = set()  # named in a record that names none of its drugs
        self.h32 = False
        self.colitis_biopsy_confirmed = False
        self.b258_only: list[tuple[str, date | None]] = []  # conditions whose only site is B25.8 "other"
        self.other_sources: set[str] = set()  # conditions that established "other CMV disease"
        self.evidence: list[ConditionEvidence] = []

    def add_condition(self, condition: Mapping[str, Any]) -> None:
        source = fhir.reference_id(condition)
        onset = _onset(condition)
        effects, names = _concept_effects(condition["code"])
        matches = list(effects)

        sites = {e.value for e, _ in matches if e.kind == "site"}
        if "gi" in sites and (confirmed := _biopsy_confirmation(names, _notes(condition))):
            self.colitis_biopsy_confirmed = True
            self.evidence.append(ConditionEvidence(BIOPSY_CONFIRMED, source, f"text '{confirmed}'", onset))
        specific = sites - {"other"}
        b258 = any(e is OTHER_CMV for e, _ in matches)
        if b258 and any(e.kind == "h32" for e, _ in matches):
            specific.add("retinitis")
            matches.append((_site("retinitis", "CMV retinitis"), "ICD-10-CM B25.8 with H32"))
        if b258 and not specific:
            self.b258_only.append((source, onset))
        # A gene named with a drug it can affect ("maribavir-resistant CMV (UL97 ...)") is that drug's;
        # with none of its drugs named ("foscarnet-resistant; UL97 A594V") it stands alone.
        named = {e.value for e, _ in matches if e.kind == "resistant-drug"}
        for gene in (e.value for e, _ in matches if e.kind == "resistance-gene"):
            explained = named & set(RESISTANCE_GENES.get(gene, ()))
            (self.genes_with_drug if explained else self.genes_alone).add(gene)
        kinds = {e.kind for e, _ in matches}
        about_uc = "acute-severe-uc" in kinds or any(
            e.kind == "ibd" and e.value == "ulcerative-colitis" for e, _ in matches
        )
        self.severe_flare |= "acute-severe-uc" in kinds
        # Steroids failing, said of the flare or of the UC (not of another disease: "steroid-refractory GVHD").
        self.steroids_failing_uc |= "steroid-resistant-uc" in kinds and about_uc
        seen: set[tuple[str, str]] = set()
        for effect, matched_by in matches:
            if effect.kind == "site" and effect.value == "other":
                if specific:
                    continue  # "other CMV disease" when the condition names its site
                self.other_sources.add(source)
            if (effect.label, matched_by) in seen:
                continue
            seen.add((effect.label, matched_by))
            self._apply(effect, onset)
            if effect.kind != "h32":
                self.evidence.append(ConditionEvidence(effect.label, source, matched_by, onset))

    def add_allergy(self, allergy: Mapping[str, Any]) -> None:
        """Ganciclovir/valganciclovir intolerance, and the allergies cidofovir's label names."""
        source = fhir.reference_id(allergy)
        names: list[str] = []
        concepts = [allergy.get("code"), allergy.get("substance")]  # R4 code; DSTU2 substance
        for reaction in fhir.items(allergy.get("reaction")):
            if isinstance(reaction, dict):
                concepts.append(reaction.get("substance"))
        found: dict[str | None, str] = {}  # allergen (None: ganciclovir intolerance) -> how it was matched
        for concept in concepts:
            names += fhir.concept_texts(concept)
            for system, code, _ in fhir.codings(concept):
                allergen = _ALLERGEN_OF_DRUG.get(codes.drug_code(system, code) or "")
                if allergen:
                    terminology = "RxNorm" if system in codes.RXNORM else "ATC"
                    found.setdefault(allergen, f"allergy/intolerance coded {terminology} {code}")
        for name in dict.fromkeys(names):
            words = fhir.normalise_words(name[:300])
            for allergen, pattern in _ALLERGY_NAMES:
                match = pattern.search(words)
                if match and not _cancelled(words, match.start(), match.end(), _INTOLERANCE_RULE):
                    found.setdefault(allergen, f"allergy/intolerance '{name[:60]}'")
        for allergen, matched_by in found.items():
            if allergen is None:
                self.intolerance = True
            else:
                self.allergies.add(allergen)
            label = INTOLERANCE.label if allergen is None else allergy_label(allergen)
            self.evidence.append(ConditionEvidence(label, source, matched_by, _onset(allergy)))

    def _apply(self, effect: Effect, onset: date | None) -> None:
        kind = effect.kind
        if kind == "organ":
            self.populations.add("sot")
            self.organs.add(effect.value)
            if onset and effect.label == transplant_label(effect.value):  # a complication's onset is not the date
                self.organ_onsets[effect.value] = max(onset, self.organ_onsets.get(effect.value, onset))
        elif kind == "hsct":
            self.populations.add("hsct")
            if onset and effect.value != "complication":  # a complication's onset is not the transplant date
                self.hsct_onsets.append(onset)
        elif kind == "hiv":
            self.populations.add("hiv")
        elif kind == "ibd":
            self.populations.add("ibd")
            if effect.value:
                self.ibd_types.add(effect.value)
        elif kind == "acute-severe-uc":
            self.populations.add("ibd")
            self.ibd_types.add("ulcerative-colitis")
        elif kind == "cgvhd":
            self.chronic_gvhd = True
        elif kind == "t-cell-depletion":
            pass  # evidence only: the HSCT window reads it from the transplant's own condition
        elif kind == "renal-replacement":
            self.renal_replacement.add(effect.value)
        elif kind == "site":
            self.sites.add(effect.value)
            if onset:
                self.disease_onsets.append(onset)
        elif kind == "infection":
            self.infection = True
        elif kind == "resistant-drug":
            self.resistant_drugs.add(effect.value)
        elif kind == "resistance-gene":
            self.resistance_genes.add(effect.value)
        elif kind == "intolerance":
            self.intolerance = True
        elif kind == "h32":
            self.h32 = True

    def facts(self) -> ConditionFacts:
        sites = set(self.sites)
        evidence = list(self.evidence)
        if self.h32 and self.b258_only:
            # B25.8 with H32 coded on a separate condition: the "other CMV disease" is retinitis.
            sites.add("retinitis")
            b258_sources = {source for source, _ in self.b258_only}
            evidence = [e for e in evidence if not (e.source_id in b258_sources and e.label == OTHER_CMV.label)]
            for source, onset in self.b258_only:
                evidence.append(ConditionEvidence("CMV retinitis", source, "ICD-10-CM B25.8 with H32", onset))
            if self.other_sources <= b258_sources:
                sites.discard("other")
        return ConditionFacts(
            populations=frozenset(self.populations),
            transplant_organs=frozenset(self.organs),
            transplant_dates=dict(sorted(self.organ_onsets.items())),
            hsct_date=max(self.hsct_onsets) if self.hsct_onsets else None,
            cmv_disease_onset=max(self.disease_onsets) if self.disease_onsets else None,
            ibd_types=frozenset(self.ibd_types),
            chronic_gvhd=self.chronic_gvhd,
            acute_severe_uc=self.severe_flare,
            steroid_resistant_asuc=self.severe_flare and self.steroids_failing_uc,
            # CRRT outranks intermittent dialysis (the patient is on it now, and no label doses it); peritoneal dialysis
            # outranks a dialysis code (Z99.2 says dialysis, not which), and no label doses it either.
            renal_replacement=next((k for k in ("crrt", "peritoneal", "dialysis") if k in self.renal_replacement), None),
            cmv_disease_sites=frozenset(sites),
            cmv_infection=self.infection,
            colitis_biopsy_confirmed=self.colitis_biopsy_confirmed,
            ganciclovir_intolerance=self.intolerance,
            allergies=frozenset(self.allergies),
            resistance_genes=frozenset(self.resistance_genes),
            attributed_genes=frozenset(self.genes_with_drug - self.genes_alone),
            resistant_drugs=frozenset(self.resistant_drugs),
            # Oldest first (the transplant before the infection after it), undated last, then by resource:
            # the cards read the same whatever order the EHR's bundle lists the conditions in.
            evidence=tuple(sorted(evidence, key=lambda e: (e.onset is None, e.onset or date.min, e.source_id))),
        )


BIOPSY_CONFIRMED = "CMV colitis confirmed on biopsy"
# One clause (to a full stop, semicolon or line end) of a colitis condition's name or notes confirms it
# when it names a biopsy (histology, immunohistochemistry, immunostain), CMV and a positive result
# ("biopsy CMV immunohistochemistry positive", "biopsy-proven CMV colitis", "biopsy showed CMV
# inclusions", "CMV colitis confirmed by biopsy"), and nothing in it negates, defers, plans, supposes,
# asks or dates it back ("CMV IHC negative", "pending", "scheduled", "to exclude", "would be positive
# if", "positive?", "prior biopsy", "(2019)", "biopsy sent"), nor names a blood test whose positive it
# could be ("CMV PCR positive, biopsy scheduled", "CMV viraemia positive, biopsy taken").
# What it cannot tell stays unconfirmed: the card then asks for the biopsy, as it would anyway.
_CLAUSE = re.compile(r"[^.;\n]+")
_BIOPSY_WORDS = re.compile(r"\b(?:biops\w*|histolog\w*|immunohistochem\w*|ihc|immunostain\w*)\b")
_CMV_WORDS = re.compile(r"\b(?:cmv|cytomegalovirus)\b")
_POSITIVE_WORDS = re.compile(r"\b(?:positive(?!\s+control)|confirmed|proven|proved|inclusions?)\b")
_NOT_CONFIRMING = re.compile(
    r"\b(?:no|not|negative|neg|without|pending|awaited|awaiting|suspected|suspicion|possible|probable|"
    r"unconfirmed|equivocal|indeterminate|inconclusive|would|if|prior|previous|previously|history|old|"
    r"scheduled|planned|requested|arranged|booked|to\s+be|to\s+follow|exclude\w*|rule\s+out|look\s+for|"
    r"sent|taken|ordered|due|deferred|declined|"
    r"pcr|nat|qnat|igg|igm|serology|serum|blood|plasma(?!\s+cells?)|stool|antigenaemia|antigenemia|"
    r"viraemia|viremia|dnaemia|dnemia|viral\s+load)\b"
    r"|\?"
    r"|\b(?:19|20)\d\d\b(?!\s+\d{1,2}\s+\d{1,2})"  # a bare year (a dated result is a full date)
)
_COLITIS_WORDS = re.compile(r"\b(?:colitis|colon\w*|sigmoid\w*|proctitis|ileocolitis|enterocolitis|rectal|rectum)\b")


def _biopsy_confirmation(names: list[str], notes: list[str]) -> str | None:
    """The clause in which a CMV colitis condition's name or note says a biopsy confirmed it, if any
    (the condition itself, or the confirming clause, must be about the colon)."""
    colitis = any(_COLITIS_WORDS.search(fhir.normalise_words(n)) for n in names)
    for raw in [*names, *notes]:
        raw = raw[:fhir.FREE_TEXT_READ]
        words = fhir.normalise_words(raw)
        for clause in _CLAUSE.finditer(words):
            text = clause.group()
            if (_BIOPSY_WORDS.search(text) and _CMV_WORDS.search(text) and _POSITIVE_WORDS.search(text)
                    and not _NOT_CONFIRMING.search(text) and (colitis or _COLITIS_WORDS.search(text))):
                return raw[clause.start():clause.end()].strip()
    return None


def _notes(condition: Mapping[str, Any]) -> list[str]:
    return [t for note in fhir.items(condition.get("note")) if isinstance(note, dict) and (t := fhir.text(note.get("text")))]


def _onset(resource: Mapping[str, Any]) -> date | None:
    onset = fhir.parse_date(resource.get("onsetDateTime"))
    if onset is None:
        period = fhir.mapping(resource.get("onsetPeriod"))
        onset = fhir.parse_date(period.get("start")) if period else None
    return onset
