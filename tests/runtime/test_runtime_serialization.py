"""Typed JSON at the engine level: a replayed step returns an equal value of the same type.

Each round-trip test runs a durable twice under one id: the first run executes
the step and then "crashes" (SimulatedCrash), the second replays the step from
its checkpoint. A third run returns the durable's stored result.
"""

import dataclasses
import enum
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

import zart
from zart import SerializationError, TaskError, durable, step

from runtime_app import SimulatedCrash


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    placed: datetime
    total: Decimal
    lines: list[Point]
    note: str | None = None


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Customer(pydantic.BaseModel):
    name: str
    since: date
    tags: list[str] = []


class Opaque:
    """A plain class: nothing says how to store it."""

    def __init__(self, value: int) -> None:
        self.value = value


UTC_MOMENT = datetime(2026, 11, 25, 13, 30, 15, 123456, tzinfo=timezone.utc)
PARIS_MOMENT = datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=1)))
PARIS = ZoneInfo("Europe/Paris")
# The second 02:30 of the autumn DST change, and a wall time in the spring gap.
PARIS_AMBIGUOUS = datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1)
PARIS_GAP = datetime(2024, 3, 31, 2, 30, tzinfo=PARIS)
IST_MOMENT = datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=5, minutes=30), "IST"))
ORDER = Order(
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    placed=UTC_MOMENT,
    total=Decimal("19.90"),
    lines=[Point(1, 2), Point(3, 4)],
)

CASES = [
    pytest.param(Point, Point(1, 2), id="dataclass"),
    pytest.param(Order, ORDER, id="nested-dataclass"),
    pytest.param(datetime, UTC_MOMENT, id="datetime-utc"),
    pytest.param(datetime, PARIS_MOMENT, id="datetime-offset"),
    pytest.param(datetime, datetime(2026, 1, 2, 3, 4, 5), id="datetime-naive"),
    pytest.param(datetime, PARIS_AMBIGUOUS, id="datetime-zoneinfo-fold1"),
    pytest.param(datetime, PARIS_GAP, id="datetime-zoneinfo-gap"),
    pytest.param(datetime, IST_MOMENT, id="datetime-named-offset"),
    pytest.param(time, time(9, 0, tzinfo=PARIS), id="time-zoneinfo"),
    pytest.param(Any, [PARIS_AMBIGUOUS, time(9, 0, tzinfo=PARIS)], id="any-zoned"),
    pytest.param(date, date(2026, 2, 28), id="date"),
    pytest.param(timedelta, timedelta(days=2, seconds=5, microseconds=7), id="timedelta"),
    pytest.param(Decimal, Decimal("0.1"), id="decimal"),
    pytest.param(Decimal, Decimal("-12345678901234567890.000000001"), id="decimal-precise"),
    pytest.param(uuid.UUID, uuid.UUID("00000000-0000-4000-8000-000000000001"), id="uuid"),
    pytest.param(bytes, b"\x00\xffbinary\n", id="bytes"),
    pytest.param(tuple[int, str], (1, "a"), id="tuple"),
    pytest.param(tuple[int, ...], (1, 2, 3), id="tuple-variadic"),
    pytest.param(set[int], {3, 1, 2}, id="set"),
    pytest.param(frozenset[str], frozenset({"a", "b"}), id="frozenset"),
    pytest.param(Color, Color.GREEN, id="enum"),
    pytest.param(list[Point], [Point(0, 0), Point(5, -5)], id="list-of-dataclasses"),
    pytest.param(dict[str, list[Point]], {"a": [Point(1, 1)], "b": []}, id="dict-of-lists"),
    pytest.param(dict[int, str], {1: "one", 2: "two"}, id="dict-int-keys"),
    pytest.param(Point | None, None, id="optional-none"),
    pytest.param(Point | None, Point(7, 8), id="optional-value"),
    pytest.param(
        Customer, Customer(name="Ana", since=date(2020, 5, 1), tags=["vip"]), id="pydantic"
    ),
    pytest.param(
        list[Customer], [Customer(name="Ben", since=date(2021, 1, 1))], id="list-pydantic"
    ),
    pytest.param(None, None, id="none"),
    pytest.param(float, 0.1, id="float"),
    pytest.param(bool, True, id="bool"),
    pytest.param(str, "héllo ✓", id="unicode"),
    pytest.param(Any, {"k": [1, 2.5, "x", None, True]}, id="any-json"),
    pytest.param(Any, (1, Decimal("2.5"), b"x"), id="any-tagged"),
]


def _assert_same(actual: object, expected: object) -> None:
    """Equal, and of the same type all the way down."""
    assert actual == expected
    assert type(actual) is type(expected), (type(actual), type(expected))
    if isinstance(expected, (datetime, time)):
        assert isinstance(actual, (datetime, time))
        # Same wall time, offset, fold and tzinfo (zone key, timezone name), not just equal.
        assert actual.replace(tzinfo=None) == expected.replace(tzinfo=None)
        assert actual.utcoffset() == expected.utcoffset()
        assert actual.fold == expected.fold
        assert type(actual.tzinfo) is type(expected.tzinfo)
        assert actual.tzname() == expected.tzname()
        assert getattr(actual.tzinfo, "key", None) == getattr(expected.tzinfo, "key", None)
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple))
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            _assert_same(a, e)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        for key, e in expected.items():
            assert key in actual
            a_key = next(k for k in actual if k == key)
            assert type(a_key) is type(key)
            _assert_same(actual[key], e)
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        for f in dataclasses.fields(expected):
            _assert_same(getattr(actual, f.name), getattr(expected, f.name))
    elif isinstance(expected, pydantic.BaseModel):
        for name in type(expected).model_fields:
            _assert_same(getattr(actual, name), getattr(expected, name))


def _round_trip_flow(annotation: Any, value: object) -> tuple[Any, list[int], list[object]]:
    calls: list[int] = []
    seen: list[object] = []
    state = {"crash": True}

    async def produce() -> Any:
        calls.append(1)
        return value

    produce.__annotations__["return"] = annotation
    produce_step = step("rt-ser-produce")(produce)

    async def flow() -> Any:
        result = await produce_step()
        seen.append(result)
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash
        return result

    flow.__annotations__["return"] = annotation
    return durable("rt-ser-roundtrip")(flow), calls, seen


@pytest.fixture
def sqlite_app(sqlite_url: str) -> Iterator[zart.Zart]:
    with zart.Zart(sqlite_url, lease_seconds=5) as engine:
        yield engine


# One case per test on SQLite (clear failures); all cases at once on every backend below.
@pytest.mark.parametrize(("annotation", "value"), CASES)
def test_step_result_round_trips_on_replay(
    sqlite_app: zart.Zart, annotation: Any, value: object
) -> None:
    app = sqlite_app
    flow, calls, seen = _round_trip_flow(annotation, value)
    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="ser-1")
    replayed = app.run(flow, execution_id="ser-1")
    assert calls == [1]  # the second run replayed the checkpoint
    assert len(seen) == 2
    _assert_same(seen[0], value)
    _assert_same(seen[1], value)  # what the body got from the checkpoint
    _assert_same(replayed, value)
    stored = app.run(flow, execution_id="ser-1")  # the durable's stored result
    _assert_same(stored, value)
    assert calls == [1]


def test_all_types_round_trip_in_one_execution(app: zart.Zart) -> None:
    calls: list[str] = []
    seen: list[list[object]] = []
    state = {"crash": True}
    cases = [(p.id, *p.values) for p in CASES]
    steps = {}
    for case_id, annotation, value in cases:

        async def produce(case_id: str = case_id, value: object = value) -> Any:
            calls.append(case_id)
            return value

        produce.__annotations__["return"] = annotation
        steps[case_id] = step(f"rt-ser-all-{case_id}")(produce)

    @durable("rt-ser-all")
    async def flow() -> str:
        seen.append([await steps[case_id]() for case_id, _, _ in cases])
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash
        return "ok"

    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="ser-all")
    assert app.run(flow, execution_id="ser-all") == "ok"
    assert sorted(calls) == sorted(c[0] for c in cases)
    for (_case_id, _annotation, value), replayed in zip(cases, seen[1], strict=True):
        _assert_same(replayed, value)


@dataclasses.dataclass
class Point3(Point):
    z: int = 0


def test_durable_input_round_trips(app: zart.Zart) -> None:
    seen: list[tuple[Order, Color, set[int]]] = []
    state = {"crash": True}

    @durable("rt-ser-input")
    async def takes(order: Order, color: Color, ids: set[int]) -> str:
        seen.append((order, color, ids))
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash
        return "ok"

    with pytest.raises(SimulatedCrash):
        app.run(takes, ORDER, Color.RED, {1, 2}, execution_id="ser-input")
    # The resumed run decodes the stored input through the annotations.
    assert app.run(takes, ORDER, Color.RED, {1, 2}, execution_id="ser-input") == "ok"
    assert len(seen) == 2
    _assert_same(seen[1][0], ORDER)
    assert seen[1][1] is Color.RED
    _assert_same(seen[1][2], {1, 2})


# --------------------------------------------------------------------------- refused values


def _failing_step_flow(
    prefix: str, annotation: Any, value: object
) -> tuple[Any, list[int], list[int]]:
    calls: list[int] = []
    after: list[int] = []

    async def produce() -> Any:
        calls.append(1)
        return value

    produce.__annotations__["return"] = annotation
    produce_step = step(f"{prefix}-produce")(produce)

    @step(f"{prefix}-after")
    async def later() -> int:
        after.append(1)
        return 1

    @durable(f"{prefix}-flow")
    async def flow() -> str:
        try:
            await produce_step()
        except SerializationError as exc:
            await later()
            return f"SerializationError: {exc}"
        return "stored"

    return flow, calls, after


@pytest.mark.parametrize(
    ("annotation", "value", "type_name"),
    [
        pytest.param(Any, Opaque(1), "Opaque", id="plain-object-under-any"),
        pytest.param(Opaque, Opaque(1), "Opaque", id="plain-class-annotation"),
        pytest.param(int, "not a number", "str", id="str-for-int"),
        pytest.param(Point, {"x": 1, "y": 2}, "dict", id="dict-for-dataclass"),
        pytest.param(list[int], [1, "two"], "str", id="bad-element"),
        pytest.param(Any, {1, Opaque(2)}, "Opaque", id="nested-plain-object"),
    ],
)
def test_unserializable_step_result_is_refused(
    app: zart.Zart, annotation: Any, value: object, type_name: str
) -> None:
    flow, calls, after = _failing_step_flow("rt-ser-bad", annotation, value)
    message = app.run(flow, execution_id="ser-bad")
    assert message.startswith("SerializationError: "), message
    assert "rt-ser-bad-produce" in message
    assert type_name in message
    assert calls == [1]  # not retried
    assert after == [1]
    # No checkpoint for the refused value; the execution went on.
    assert [s.name for s in app.steps("ser-bad")] == ["rt-ser-bad-after"]


def test_unserializable_step_result_unhandled_fails_execution(app: zart.Zart) -> None:
    @step("rt-ser-unh-produce")
    async def produce() -> Any:
        return Opaque(3)

    @durable("rt-ser-unh")
    async def flow() -> None:
        await produce()

    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="ser-unh")
    assert info.value.error_type == "SerializationError"
    assert isinstance(info.value.cause, SerializationError)
    assert "rt-ser-unh-produce" in str(info.value) and "Opaque" in str(info.value)
    assert app.steps("ser-unh") == []
    assert app.status("ser-unh").status == "failed"


def test_unserializable_durable_result_fails_execution(app: zart.Zart) -> None:
    @durable("rt-ser-badresult")
    async def flow() -> Any:
        return Opaque(4)

    with pytest.raises(TaskError) as info:
        app.run(flow, execution_id="ser-badresult")
    assert info.value.error_type == "SerializationError"
    assert "Opaque" in str(info.value)
    st = app.status("ser-badresult")
    assert st.status == "failed"
    assert st.error is not None and "Opaque" in st.error


def test_unserializable_input_writes_nothing(app: zart.Zart) -> None:
    ran: list[int] = []

    @durable("rt-ser-badinput")
    async def flow(thing: Any) -> int:
        ran.append(1)
        return 1

    with pytest.raises(SerializationError) as info:
        app.run(flow, Opaque(5), execution_id="ser-badinput")
    assert "Opaque" in str(info.value)
    with pytest.raises(SerializationError):
        app.run(flow, [1, Opaque(6)], execution_id="ser-badinput")
    with pytest.raises(zart.ExecutionNotFoundError):
        app.status("ser-badinput")
    assert app.list() == []
    assert ran == []


def test_input_not_matching_annotation_is_refused(app: zart.Zart) -> None:
    @durable("rt-ser-badinput2")
    async def flow(n: int) -> int:
        return n

    with pytest.raises(SerializationError):
        app.run(flow, "seven", execution_id="ser-badinput2")
    assert app.list() == []


def test_annotation_precision_subclass_is_stored_as_declared(app: zart.Zart) -> None:
    # The annotation is the contract: a subclass instance comes back as the declared type.
    flow, _calls, seen = _round_trip_flow(Point, Point3(1, 2, 3))
    with pytest.raises(SimulatedCrash):
        app.run(flow, execution_id="ser-sub")
    app.run(flow, execution_id="ser-sub")
    assert type(seen[1]) is Point
    assert (seen[1].x, seen[1].y) == (1, 2)


def test_callable_annotation_refused_clearly(app: zart.Zart) -> None:
    flow, calls, _after = _failing_step_flow("rt-ser-fn", Callable[[], int], lambda: 1)
    message = app.run(flow, execution_id="ser-fn")
    assert message.startswith("SerializationError: ")
    assert "rt-ser-fn-produce" in message
    assert calls == [1]
