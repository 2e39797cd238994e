"""@frozen behaves as @dataclass(frozen=True), with its own __init__."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest

from cds_service.facts.model import ClinicalFacts, ConditionFacts, MedicationOrder
from cds_service.frozen import frozen


def _course(decorate):
    """The same class body, made a value type by `decorate`: @frozen, and dataclasses' own for comparison."""

    @decorate
    class Course:
        drug: str
        days: int = 14
        notes: list[str] = field(default_factory=list, compare=False)
        label: str = field(default="", repr=False)
        seen: dict = field(default_factory=dict, init=False, compare=False)
        derived: str = field(init=False, default="")

        def __post_init__(self) -> None:
            object.__setattr__(self, "derived", f"{self.drug} x {self.days}")

    return Course


Course = _course(frozen)
Reference = _course(dataclass(frozen=True))


def test_fields_defaults_factories_and_post_init_as_dataclasses_sets_them():
    course, reference = Course("foscarnet"), Reference("foscarnet")
    assert vars(course) == vars(reference) == {
        "drug": "foscarnet", "days": 14, "notes": [], "label": "", "seen": {}, "derived": "foscarnet x 14"}
    assert Course("ganciclovir", 21, ["IV"], "x").notes == ["IV"]
    assert Course("a").notes is not Course("a").notes and Course("a").seen is not Course("a").seen


def test_same_signature_equality_hash_and_repr():
    assert list(inspect.signature(Course).parameters) == list(inspect.signature(Reference).parameters)
    assert Course("a", 1, ["x"]) == Course("a", 1, ["y"]) and Course("a", 1) != Course("a", 2)
    assert hash(Course("a", 1, label="x")) == hash(Course("a", 1, label="x"))
    assert repr(Course("a", 1)) == repr(Reference("a", 1))
    with pytest.raises(TypeError):
        Course()  # the field without a default is required, as in dataclasses
    with pytest.raises(TypeError):
        Course("a", seen={})  # init=False fields are not parameters


def test_immutable_and_replaceable():
    course = Course("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        course.days = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del course.drug
    longer = dataclasses.replace(course, days=21)
    assert (longer.days, longer.derived, course.days) == (21, "a x 21", 14)


def test_the_value_types_use_it():
    # The facts' value types are built by @frozen's __init__, their invariants kept (ConditionFacts derives a field).
    assert MedicationOrder.__init__.__qualname__ == "MedicationOrder.__init__"
    assert "__setattr__" not in MedicationOrder.__init__.__code__.co_names
    assert ConditionFacts(resistant_drugs=frozenset({"ganciclovir"})).ganciclovir_resistance
    assert ClinicalFacts.__dataclass_params__.frozen


def test_an_init_false_default_stays_the_class_s_as_in_dataclasses():
    @frozen
    class Plain:
        drug: str
        unit: str = field(init=False, default="mg")

    @dataclass(frozen=True)
    class PlainReference:
        drug: str
        unit: str = field(init=False, default="mg")

    assert vars(Plain("a")) == vars(PlainReference("a")) == {"drug": "a"} and Plain("a").unit == "mg"


def test_what_it_cannot_build_is_refused():
    with pytest.raises(TypeError, match="InitVar"):
        @frozen
        class WithInitVar:
            drug: str
            scale: dataclasses.InitVar[float] = 1.0
    with pytest.raises(TypeError, match="its own"):
        @frozen
        class OwnInit:
            drug: str

            def __init__(self, drug: str) -> None:
                object.__setattr__(self, "drug", drug)

    with pytest.raises(TypeError, match="keyword-only"):
        @frozen
        class KeywordOnly:
            drug: str = field(kw_only=True)
    with pytest.raises(TypeError, match="__dict__"):
        @frozen
        class Slotted:
            __slots__ = ("drug",)
            drug: str
