"""workers.fastinit: the generated __init__ builds exactly what the dataclass's own would."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.actions import Action
from workers.engine import Decision, Step
from workers.events import CanonicalEvent
from workers.fastinit import fast_frozen_init
from workers.state import AccountState


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    a: str
    b: int = 2
    c: dict = dataclasses.field(default_factory=dict)


@fast_frozen_init
@dataclasses.dataclass(frozen=True, slots=True)
class Fast:
    a: str
    b: int = 2
    c: dict = dataclasses.field(default_factory=dict)


def test_the_classes_built_per_event_use_it():
    for cls in (Action, Decision, Step, CanonicalEvent):
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert any(name.startswith("_set_") for name in cls.__init__.__code__.co_names)


@given(a=st.text(), b=st.integers(), use_b=st.booleans(), by_keyword=st.booleans())
def test_same_fields_defaults_and_factories_as_the_dataclass(a, b, use_b, by_keyword):
    args = {"a": a, **({"b": b} if use_b else {})}
    plain = Plain(**args) if by_keyword else Plain(*args.values())
    fast = Fast(**args) if by_keyword else Fast(*args.values())
    assert (fast.a, fast.b, fast.c) == (plain.a, plain.b, plain.c)
    assert Fast(a).c is not Fast(a).c  # a fresh default per instance, as default_factory promises


def test_instances_stay_frozen_and_wrong_calls_fail_as_before():
    fast = Fast("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = "y"  # type: ignore[misc]
    for call in (lambda: Fast(), lambda: Fast("x", nope=1), lambda: Fast("x", 1, {}, 4)):
        with pytest.raises(TypeError):
            call()
    step = Step(AccountState(account="a"))
    assert (step.decisions, step.actions, step.duplicate) == ((), (), False)
    assert hash(Decision("a", 1.0, "t", "client", "r", (), None, ())) == hash(
        Decision("a", 1.0, "t", "client", "r", (), None, ()))


def test_a_shape_it_does_not_reproduce_keeps_the_dataclass_init():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    assert fast_frozen_init(Checked).__init__ is Checked.__init__
    with pytest.raises(ValueError):
        Checked(-1)
