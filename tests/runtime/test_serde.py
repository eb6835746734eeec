"""Typed JSON serialization (zart._serde): round trips keep value AND type."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import json
import math
import os
import pathlib
import subprocess
import sys
import time
import typing
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, NamedTuple, NewType, Optional, TypeVar, Union
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zart._errors import SerializationError, ZartError
from zart._serde import ArgsCodec, Codec, args_codec, codec_for, fingerprint, return_codec

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired, TypedDict

REPO = pathlib.Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def assert_same(a: Any, b: Any, path: str = "value") -> None:
    """Equal AND of the same type, recursively (NaN counts as equal to NaN)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
        return
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
            # keys too: 1 and True are equal dict keys but not the same type
            (kb,) = [x for x in b if x == k]
            assert type(kb) is type(k), f"{path}: key {k!r} type"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, (set, frozenset)):
        assert a == b, path
        assert sorted(map(repr, map(type, a))) == sorted(map(repr, map(type, b))), path
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif hasattr(type(a), "model_fields"):  # pydantic
        for name in type(a).model_fields:
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, (dt.datetime, dt.time)):
        # Same wall time, offset, fold and kind of tzinfo (zone key, timezone name).
        assert a == b, path
        assert a.replace(tzinfo=None) == b.replace(tzinfo=None), path
        assert a.fold == b.fold, f"{path}: fold"
        assert a.utcoffset() == b.utcoffset(), path
        if "pydantic" in type(a.tzinfo).__module__ + type(b.tzinfo).__module__:
            return  # inside a pydantic model: pydantic's JSON mode keeps the offset only
        assert type(a.tzinfo) is type(b.tzinfo), f"{path}: tzinfo type"
        assert a.tzname() == b.tzname(), f"{path}: tzname"
        assert getattr(a.tzinfo, "key", None) == getattr(b.tzinfo, "key", None), f"{path}: zone"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _reject(token: str) -> Any:
    raise AssertionError(f"non-standard JSON token {token}")


def roundtrip(annotation: Any, value: Any) -> Any:
    codec = codec_for(annotation)
    text = codec.dumps(value)
    json.loads(text, parse_constant=_reject)  # plain, strict JSON (no NaN tokens)
    text.encode("utf-8")  # storable in a UTF-8 text column
    back = codec.loads(text)
    assert_same(value, back)
    assert_same(codec.loads(codec.dumps(back)), value)  # a replayed value stores again
    return back


# --------------------------------------------------------------------------- fixtures


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(str, enum.Enum):
    FAST = "fast"
    SLOW = "slow"


class Perm(enum.Flag):
    R = 1
    W = 2
    X = 4


class Shape(enum.Enum):
    POINT = (0, 0)
    UNIT = (1, 1)


UserId = NewType("UserId", str)


class Sku(str):
    """A str subclass used as a type."""


@dataclasses.dataclass
class Address:
    street: str
    city: str
    zip: str | None = None


@dataclasses.dataclass
class User:
    name: str
    age: int
    joined: dt.datetime
    address: Address
    tags: list[str] = dataclasses.field(default_factory=list)
    balance: Decimal = Decimal("0")


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclasses.dataclass(slots=True)
class Slotted:
    a: int
    b: tuple[int, ...] = ()


@dataclasses.dataclass
class WithPostInit:
    a: int
    doubled: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.doubled = self.a * 2
        self._derived = "set in __post_init__"


@dataclasses.dataclass
class WithInitVar:
    x: int
    scale: dataclasses.InitVar[int]

    def __post_init__(self, scale: int) -> None:
        self.x *= scale


@dataclasses.dataclass(init=False)
class NoInit:
    a: int
    b: list[int] = dataclasses.field(default_factory=list)

    def __init__(self, raw: str) -> None:
        self.a, self.b = int(raw), [int(raw)]


@dataclasses.dataclass
class Validated:
    qty: int

    def __post_init__(self) -> None:
        if self.qty < 0:
            raise ValueError("qty must be >= 0")


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node] = dataclasses.field(default_factory=list)
    parent_id: Node | None = None


T = TypeVar("T")


@dataclasses.dataclass
class Box(Generic[T]):
    item: T
    items: list[T]


@dataclasses.dataclass
class IntBox(Box[int]):
    label: str = ""


@dataclasses.dataclass
class Cat:
    name: str


@dataclasses.dataclass
class Dog:
    name: str


@dataclasses.dataclass
class Holder:
    owner: Any


class Pair(NamedTuple):
    left: int
    right: dt.date
    label: str = "?"


class Movie(TypedDict):
    title: str
    year: int
    released: dt.date
    rating: NotRequired[Decimal]


class Foo:
    """Not serializable: no dataclass, no model."""


# --------------------------------------------------------------------------- scalars

UTC = dt.timezone.utc
PARIS = ZoneInfo("Europe/Paris")

SCALARS: list[tuple[Any, Any]] = [
    (None, None),
    (type(None), None),
    (bool, True),
    (bool, False),
    (int, 0),
    (int, -(10**30)),
    (float, 1.5),
    (float, -0.0),
    (float, 1e308),
    (float, float("inf")),
    (float, float("-inf")),
    (float, float("nan")),
    (str, ""),
    (str, "héllo ☃ \u0000 \ud800"),
    (bytes, b"\x00\xffbinary"),
    (bytearray, bytearray(b"abc")),
    (dt.datetime, dt.datetime(2024, 2, 29, 12, 30, 1, 123456)),
    (dt.datetime, dt.datetime(2024, 2, 29, 12, 30, tzinfo=UTC)),
    (dt.datetime, dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
    (dt.datetime, dt.datetime(2024, 7, 1, 9, 0, tzinfo=PARIS)),
    (dt.date, dt.date(1999, 12, 31)),
    (dt.time, dt.time(23, 59, 59, 999)),
    (dt.time, dt.time(8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    (dt.timedelta, dt.timedelta(days=-3, seconds=5, microseconds=7)),
    (Decimal, Decimal("0.1")),
    (Decimal, Decimal("-1.2300E+5")),
    (Decimal, Decimal("123456789012345678901234567890.000000000000000001")),
    (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    (pathlib.Path, pathlib.Path("/tmp/a b/c.txt")),
    (pathlib.PurePosixPath, pathlib.PurePosixPath("x/y")),
    (Color, Color.GREEN),
    (Level, Level.HIGH),
    (Mode, Mode.SLOW),
    (Perm, Perm.R | Perm.X),
    (Shape, Shape.UNIT),
    (UserId, UserId("u-1")),
    (Sku, Sku("sku-9")),
    (Annotated[int, "meta"], 7),
    (Annotated[int, {"unhashable": []}], 7),
    (Literal["a", "b"], "b"),
    (Literal[1, True, None], True),
    (Literal[1, True, None], 1),
    (Literal[Color.RED], Color.RED),
    (Any, None),
    (object, "x"),
]


def _stable_id(obj: object) -> str:
    """Test ids must not depend on set iteration order: pytest-xdist workers compare them."""
    if isinstance(obj, (set, frozenset)):
        return f"{type(obj).__name__}({sorted(map(repr, obj))})"
    return repr(obj)


@pytest.mark.parametrize(("annotation", "value"), SCALARS, ids=_stable_id)
def test_scalar_roundtrip(annotation: Any, value: Any) -> None:
    roundtrip(annotation, value)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="enum.StrEnum is 3.11+")
def test_strenum() -> None:
    class Fruit(enum.StrEnum):
        APPLE = enum.auto()
        PEAR = enum.auto()

    assert codec_for(Fruit).dumps(Fruit.PEAR) == '"pear"'
    roundtrip(Fruit, Fruit.PEAR)
    roundtrip(dict[Fruit, int], {Fruit.APPLE: 1})


def test_stored_forms_are_readable() -> None:
    assert codec_for(Decimal).dumps(Decimal("0.1")) == '"0.1"'
    assert codec_for(bytes).dumps(b"hi") == '"aGk="'
    assert codec_for(float).dumps(float("nan")) == '"NaN"'
    assert codec_for(dt.datetime).dumps(dt.datetime(2024, 1, 2, 3, 4, tzinfo=UTC)) == (
        '"2024-01-02T03:04:00+00:00"'
    )
    assert codec_for(dt.datetime).dumps(dt.datetime(2024, 7, 1, tzinfo=PARIS)) == (
        '"2024-07-01T00:00:00+02:00[Europe/Paris]"'
    )
    assert codec_for(Color).dumps(Color.RED) == '"red"'
    assert codec_for(str).dumps("é") == '"é"'  # ensure_ascii=False


def test_timezones_are_preserved() -> None:
    aware = dt.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1)  # ambiguous hour
    back = roundtrip(dt.datetime, aware)
    assert back.tzinfo is PARIS and back.fold == 1 and back.utcoffset() == aware.utcoffset()
    naive = roundtrip(dt.datetime, dt.datetime(2024, 1, 1))
    assert naive.tzinfo is None
    assert roundtrip(dt.datetime, dt.datetime(2024, 1, 1, tzinfo=UTC)).tzinfo is UTC


def test_decimal_is_exact() -> None:
    back = roundtrip(Decimal, Decimal("0.1"))
    assert str(back) == "0.1" and back + back + back == Decimal("0.3")
    assert str(roundtrip(Decimal, Decimal("1.10"))) == "1.10"  # exponent kept


def test_numeric_choices() -> None:
    # int under float stays int (the stored JSON number type decides), bool stays bool.
    roundtrip(float, 3)
    roundtrip(float, True)
    roundtrip(int, True)
    # subclass instances come back as the annotated type
    assert type(codec_for(int).loads(codec_for(int).dumps(Level.HIGH))) is int
    assert type(codec_for(str).loads(codec_for(str).dumps(Mode.FAST))) is str
    assert codec_for(str).loads(codec_for(str).dumps(Mode.FAST)) == "fast"


def test_datetime_under_date_keeps_its_time() -> None:
    value = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    back = codec_for(dt.date).loads(codec_for(dt.date).dumps(value))
    assert type(back) is dt.datetime and back == value


# --------------------------------------------------------------------------- containers

CONTAINERS: list[tuple[Any, Any]] = [
    (list[int], [1, 2, 3]),
    (list[str], []),
    (list, [1, "a", None, (1, 2)]),
    (typing.List[float], [1.0, float("inf")]),  # noqa: UP006
    (tuple[int, ...], (1, 2, 3)),
    (tuple[int, str, dt.date], (1, "a", dt.date(2020, 1, 1))),
    (tuple[()], ()),
    (tuple, (1, "x", b"y")),
    (set[str], {"a", "b", "c"}),
    (frozenset[int], frozenset({1, 2})),
    (set[tuple[int, str]], {(1, "a"), (2, "b")}),
    (dict[str, int], {"a": 1, "b": 2}),
    (dict[int, str], {1: "a", -2: "b"}),
    (dict[uuid.UUID, Decimal], {uuid.UUID(int=1): Decimal("1.5")}),
    (dict[Color, list[int]], {Color.RED: [1], Color.GREEN: []}),
    (dict[Level, str], {Level.LOW: "l"}),
    (dict[dt.date, int], {dt.date(2024, 1, 1): 1}),
    (dict[tuple[int, int], str], {(0, 1): "a", (2, 3): "b"}),
    (dict[bool, int], {True: 1, False: 0}),
    (dict[str, dict[int, list[dt.datetime]]], {"a": {1: [dt.datetime(2020, 1, 1, tzinfo=UTC)]}}),
    (dict, {"a": 1, 2: "b"}),
    (dict, {"a": [1, 2]}),
    (dict[Any, int], {(1, 2): 3}),
    (collections.deque[int], collections.deque([1, 2])),
    (collections.OrderedDict[str, int], collections.OrderedDict([("b", 1), ("a", 2)])),
    (collections.Counter[str], collections.Counter("hello")),
    (Mapping[str, int], {"a": 1}),
    (Sequence[int], [1, 2]),
    (Sequence[int], (1, 2)),
    (list[list[list[int]]], [[[1], []], []]),
    (list[Optional[int]], [1, None, 3]),  # noqa: UP045
]


@pytest.mark.parametrize(("annotation", "value"), CONTAINERS, ids=_stable_id)
def test_container_roundtrip(annotation: Any, value: Any) -> None:
    roundtrip(annotation, value)


def test_dict_key_forms() -> None:
    assert codec_for(dict[str, int]).dumps({"a": 1}) == '{"a":1}'
    assert codec_for(dict[uuid.UUID, int]).dumps({uuid.UUID(int=1): 1}) == (
        '{"00000000-0000-0000-0000-000000000001":1}'
    )
    assert codec_for(dict[int, str]).dumps({1: "a"}) == '[[1,"a"]]'


# --------------------------------------------------------------------------- unions


UNIONS: list[tuple[Any, Any]] = [
    (Optional[int], None),  # noqa: UP045
    (Optional[int], 5),  # noqa: UP045
    (int | None, 5),
    (Union[int, str], "5"),  # noqa: UP007
    (Union[int, str], 5),  # noqa: UP007
    (int | float, 1),
    (int | float, 1.0),
    (float | str, float("nan")),
    (float | str, "NaN"),
    (bool | int, True),
    (bool | int, 1),
    (dt.date | str, dt.date(2020, 1, 1)),
    (dt.date | str, "2020-01-01"),
    (dt.datetime | dt.date, dt.date(2020, 1, 1)),
    (dt.datetime | dt.date, dt.datetime(2020, 1, 1, 5)),
    (Cat | Dog, Cat("tom")),
    (Cat | Dog, Dog("rex")),
    (Cat | Dog | None, Dog("rex")),
    (Cat | Dog | None, None),
    (list[int] | list[str], ["a"]),
    (list[int] | list[str], [1]),
    (dict[str, Any] | Cat, {"$type": "Cat", "$value": {"name": "x"}}),  # looks like a tag
    (dict[str, Any] | int, {"$type": "x", "$value": 1}),
    (int | Any, (1, 2)),
    (Literal["a"] | Literal[Color.RED], Color.RED),
    (Literal["red", Color.RED], Color.RED),  # same JSON form: tagged
    (Literal["red", Color.RED], "red"),
    (Sequence[int] | None, (1, 2)),
]


@pytest.mark.parametrize(("annotation", "value"), UNIONS, ids=_stable_id)
def test_union_roundtrip(annotation: Any, value: Any) -> None:
    roundtrip(annotation, value)


def test_union_tags_only_when_ambiguous() -> None:
    assert codec_for(int | None).dumps(None) == "null"
    assert codec_for(Cat | None).dumps(Cat("a")) == '{"name":"a"}'
    assert codec_for(int | list[str]).dumps(["x"]) == '["x"]'
    assert json.loads(codec_for(Cat | Dog).dumps(Dog("d"))) == {
        "$type": "Dog",
        "$value": {"name": "d"},
    }
    # Reordering the members keeps old rows readable.
    row = codec_for(Cat | Dog).dumps(Cat("c"))
    assert_same(codec_for(Dog | Cat).loads(row), Cat("c"))


# --------------------------------------------------------------------------- dataclasses & co


def make_user(name: str = "ana") -> User:
    return User(
        name=name,
        age=41,
        joined=dt.datetime(2020, 5, 17, 8, 0, tzinfo=UTC),
        address=Address("Rua A 1", "Lisboa"),
        tags=["admin", "ops"],
        balance=Decimal("10.10"),
    )


def test_dataclass_nested_and_lists() -> None:
    roundtrip(User, make_user())
    roundtrip(list[User], [make_user("a"), make_user("b")])
    roundtrip(dict[str, User], {"x": make_user()})
    roundtrip(Point, Point(1.5, -2.0))
    roundtrip(Slotted, Slotted(1, (2, 3)))


def test_dataclass_defaults_and_schema_evolution() -> None:
    codec = codec_for(User)
    row = json.loads(codec.dumps(make_user()))
    del row["tags"], row["balance"]  # fields added later, with defaults
    row["removed_field"] = 1  # a field that no longer exists
    back = codec.loads(json.dumps(row))
    assert back.tags == [] and back.balance == Decimal("0")
    del row["age"]
    with pytest.raises(SerializationError, match=r"result\.age: missing required field 'age'"):
        codec.loads(json.dumps(row))


def test_dataclass_post_init_and_initvar() -> None:
    back = roundtrip(WithPostInit, WithPostInit(3))
    assert back.doubled == 6 and back._derived == "set in __post_init__"
    changed = WithPostInit(3)
    changed.doubled = 100  # init=False field changed after construction: restored as stored
    assert codec_for(WithPostInit).loads(codec_for(WithPostInit).dumps(changed)).doubled == 100
    # InitVar: the class is rebuilt without __init__, so x is not scaled twice.
    back2 = roundtrip(WithInitVar, WithInitVar(2, scale=10))
    assert back2.x == 20


def test_dataclass_without_init() -> None:
    back = roundtrip(NoInit, NoInit("4"))
    assert back.a == 4 and back.b == [4]
    old_row = '{"a": 1}'  # a row written before field b existed: its default applies
    assert codec_for(NoInit).loads(old_row).b == []
    assert codec_for(WithInitVar).loads('{"x": 3}').x == 3


def test_constructor_errors_on_decode() -> None:
    with pytest.raises(SerializationError, match=r"Validated\(\.\.\.\) raised ValueError: qty"):
        codec_for(Validated).loads('{"qty": -1}')


def test_recursive_and_generic_dataclasses() -> None:
    tree = Node(1, [Node(2), Node(3, [Node(4)])], parent_id=Node(0))
    roundtrip(Node, tree)
    assert '"$type"' not in codec_for(Node).dumps(tree)  # Node | None needs no tag
    roundtrip(Box[int], Box(1, [2, 3]))
    roundtrip(Box[dt.date], Box(dt.date(2020, 1, 1), []))
    roundtrip(Box, Box((1, 2), [b"x"]))  # unbound TypeVar: Any
    roundtrip(IntBox, IntBox(1, [2], "x"))  # TypeVar bound by a generic base
    with pytest.raises(
        SerializationError, match=r"result\.item: does not match the annotation int"
    ):
        codec_for(IntBox).dumps(IntBox("no", []))  # type: ignore[arg-type]


def test_subclass_is_stored_as_declared_type() -> None:
    @dataclasses.dataclass
    class Admin(Address):
        level: int = 9

    back = codec_for(Address).loads(codec_for(Address).dumps(Admin("s", "c")))
    assert type(back) is Address and back == Address("s", "c")


def test_namedtuple_and_typeddict() -> None:
    roundtrip(Pair, Pair(1, dt.date(2020, 2, 2)))
    roundtrip(list[Pair], [Pair(1, dt.date(2020, 2, 2), "x")])
    assert json.loads(codec_for(Pair).dumps(Pair(1, dt.date(2020, 2, 2)))) == {
        "left": 1,
        "right": "2020-02-02",
        "label": "?",
    }
    movie: Movie = {"title": "Alien", "year": 1979, "released": dt.date(1979, 5, 25)}
    roundtrip(Movie, movie)
    roundtrip(Movie, {**movie, "rating": Decimal("8.5")})
    extra = {**movie, "extra": (1, 2)}  # undeclared key: stored self-described
    roundtrip(Movie, extra)
    with pytest.raises(SerializationError, match="missing required key 'year'"):
        codec_for(Movie).dumps({"title": "x", "released": dt.date(2000, 1, 1)})


def test_any_field_inside_dataclass() -> None:
    roundtrip(Holder, Holder({"a": (1, dt.date(2020, 1, 1))}))


# --------------------------------------------------------------------------- pydantic

try:
    import pydantic
except ImportError:  # pragma: no cover - pydantic is optional at runtime
    pydantic = None

needs_pydantic = pytest.mark.skipif(pydantic is None, reason="pydantic not installed")

if pydantic is not None:

    class Tag(pydantic.BaseModel):
        label: str
        created: dt.datetime

    class Post(pydantic.BaseModel):
        id: uuid.UUID
        title: str = pydantic.Field(alias="postTitle")
        tags: list[Tag] = []
        price: Decimal
        scores: dict[str, float] = {}

    class StrictModel(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        a: int

    def make_post() -> Post:
        return Post(
            id=uuid.UUID(int=7),
            postTitle="hello",
            tags=[Tag(label="x", created=dt.datetime(2021, 1, 1, tzinfo=UTC))],
            price=Decimal("9.99"),
            scores={"a": 1.5},
        )


@needs_pydantic
def test_pydantic_models() -> None:
    roundtrip(Post, make_post())
    roundtrip(list[Post], [make_post(), make_post()])
    roundtrip(Post | None, make_post())
    roundtrip(dict[int, Tag], {1: Tag(label="y", created=dt.datetime(2021, 1, 1))})
    roundtrip(pydantic.RootModel[list[int]], pydantic.RootModel[list[int]]([1, 2]))


@needs_pydantic
def test_pydantic_subclass_stored_as_declared_model() -> None:
    class Sub(StrictModel):
        b: int = 2

    codec = codec_for(StrictModel)
    back = codec.loads(codec.dumps(Sub(a=1)))
    assert type(back) is StrictModel and back.a == 1


@needs_pydantic
def test_pydantic_wrong_field_type_fails_before_storing() -> None:
    bad = StrictModel.model_construct(a="not an int")
    with pytest.raises(SerializationError, match="StrictModel"):
        codec_for(StrictModel).dumps(bad)
    with pytest.raises(SerializationError, match=r"StrictModel\.model_validate failed"):
        codec_for(StrictModel).loads('{"a": "x"}')


@needs_pydantic
def test_pydantic_union_and_optional_errors() -> None:
    class Other(pydantic.BaseModel):
        a: int

    row = codec_for(StrictModel | Other).dumps(Other(a=1))
    assert json.loads(row) == {"$type": "Other", "$value": {"a": 1}}
    assert_same(codec_for(StrictModel | Other).loads(row), Other(a=1))
    bad = StrictModel.model_construct(a="x")
    with pytest.raises(SerializationError, match="pydantic could not serialize it"):
        codec_for(Optional[StrictModel]).dumps(bad)  # noqa: UP045


@needs_pydantic
def test_pydantic_model_under_any_is_refused() -> None:
    with pytest.raises(
        SerializationError, match=r"annotate the step's return type .*e\.g\. -> Post"
    ):
        codec_for(Any).dumps(make_post())


# --------------------------------------------------------------------------- Any


def test_any_tags_round_trip() -> None:
    value = {
        "tuple": (1, "a", (2,)),
        "set": {1, 2},
        "frozen": frozenset({"x"}),
        "bytes": b"\x00",
        "ba": bytearray(b"1"),
        "dt": dt.datetime(2020, 1, 1, tzinfo=PARIS),
        "naive": dt.datetime(2020, 1, 1),
        "d": dt.date(2020, 1, 1),
        "t": dt.time(1, 2),
        "td": dt.timedelta(seconds=1.5),
        "dec": Decimal("0.1"),
        "uuid": uuid.UUID(int=3),
        "path": pathlib.Path("a/b"),
        "floats": [float("nan"), float("inf"), -0.0],
        "nonstr": {1: "a", (1, 2): "b", None: 3},
        "$escaped": {"$tuple": [1, 2]},
        "nested": [{"$x": 1}, {"$type": 1, "$value": 2}],
    }
    back = roundtrip(Any, value)
    assert back["nested"][0] == {"$x": 1}


def test_any_dataclass_is_refused_with_advice() -> None:
    with pytest.raises(SerializationError) as info:
        codec_for(Any).dumps([1, make_user()])
    msg = str(info.value)
    assert "User" in msg and "result[1]" in msg and "-> User" in msg
    with pytest.raises(SerializationError, match="annotate"):
        codec_for(Any).dumps(Color.RED)


def test_any_never_loads_classes_named_in_data() -> None:
    with pytest.raises(SerializationError, match="unknown type tag '\\$class'"):
        codec_for(Any).loads('{"$class": "os.system"}')


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_trees = st.recursive(
    json_leaves,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=20,
)
hashable_tagged = (
    json_leaves
    | st.binary(max_size=6)
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals(allow_nan=False)
    | st.uuids()
    | st.floats()
)
any_trees = st.recursive(
    hashable_tagged,
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.tuples(kids, kids)
        | st.dictionaries(st.text(max_size=3) | st.integers(), kids, max_size=3)
        | st.frozensets(hashable_tagged, max_size=3)
        | st.sets(st.integers() | st.text(max_size=3), max_size=3)
    ),
    max_leaves=15,
)
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(json_trees)
def test_property_json_native_trees(value: Any) -> None:
    roundtrip(Any, value)
    # a JSON-native value is stored as itself under Any: no tags
    assert json.loads(codec_for(Any).dumps(value)) == value or "$" in json.dumps(value)


@FAST
@given(any_trees)
def test_property_any_tagged(value: Any) -> None:
    roundtrip(Any, value)


@FAST
@given(
    st.dictionaries(st.integers(), st.lists(st.datetimes() | st.none(), max_size=3), max_size=4),
    st.lists(st.tuples(st.decimals(allow_nan=False), st.binary(max_size=4)), max_size=4),
)
def test_property_typed(d: dict[int, list[dt.datetime | None]], pairs: Any) -> None:
    roundtrip(dict[int, list[Optional[dt.datetime]]], d)  # noqa: UP045
    roundtrip(list[tuple[Decimal, bytes]], pairs)


# --------------------------------------------------------------------------- errors


@dataclasses.dataclass
class Task:
    title: str
    owner: Any


def test_unserializable_value_message_names_type_and_path() -> None:
    tasks = [Task("a", "x"), Task("b", 1), Task("c", None), Task("d", Foo())]
    with pytest.raises(SerializationError) as info:
        codec_for(list[Task]).dumps(tasks)
    msg = str(info.value)
    assert "cannot serialize value of type Foo at result[3].owner" in msg
    assert "annotate it as a dataclass, pydantic model, or a supported type" in msg
    assert isinstance(info.value, TypeError) and isinstance(info.value, ZartError)


def test_mismatched_annotation() -> None:
    with pytest.raises(SerializationError, match=r"type str at result: .*annotation int"):
        codec_for(int).dumps("5")
    with pytest.raises(SerializationError, match=r"type int at result\.address\.city"):
        user = make_user()
        user.address.city = 5  # type: ignore[assignment]
        codec_for(User).dumps(user)
    with pytest.raises(SerializationError, match=r"result\['k'\]\[1\]: .*annotation int"):
        codec_for(dict[str, list[int]]).dumps({"k": [1, "2"]})
    with pytest.raises(SerializationError, match=r"int \| None"):
        codec_for(Optional[int]).dumps("x")  # noqa: UP045
    with pytest.raises(SerializationError, match=r"annotation Cat \| Dog"):
        codec_for(Cat | Dog).dumps(Address("a", "b"))
    with pytest.raises(SerializationError, match="float"):
        codec_for(int).dumps(1.0)
    with pytest.raises(SerializationError, match="type set"):
        codec_for(frozenset[int]).dumps({1})
    with pytest.raises(SerializationError, match=r"Literal\['a'\]"):
        codec_for(Literal["a"]).dumps("b")


def test_unsupported_annotation_fails_lazily() -> None:
    codec = codec_for(Foo)  # no error while building (decoration/import time)
    with pytest.raises(SerializationError, match="cannot serialize type Foo at result"):
        codec.dumps(Foo())
    with pytest.raises(SerializationError, match=r"type Foo at result\.x"):

        @dataclasses.dataclass
        class HasFoo:
            x: Foo

        codec_for(HasFoo).dumps(None)


@pytest.mark.parametrize(
    ("annotation", "text", "pattern"),
    [
        (int, "{not json", "not valid JSON"),
        (int, "", "not valid JSON"),
        (int, '"5"', "expected int, found JSON string '5'"),
        (User, "[]", "expected User"),
        (list[int], "[1, 2, null]", r"result\[2\]: expected int"),
        (dt.datetime, '"yesterday"', "invalid stored datetime"),
        (Decimal, "0.1", "expected Decimal"),
        (bytes, '"***"', "invalid stored bytes"),
        (Color, '"blue"', "enum Color"),
        (Cat | Dog, '{"$type": "Cow", "$value": {}}', r"not a member of Cat \| Dog"),
        (Cat | Dog, '{"name": "x"}', r"expected Cat \| Dog"),
        (tuple[int, int], "[1]", "array of 2"),
        (Any, '{"$decimal": 5}', "decimal string"),
        (set[list[int]], "[[1]]", "cannot build"),
        (dict[int, int], "[[1]]", r"\[key, value\] pair"),
    ],
)
def test_corrupt_rows(annotation: Any, text: str, pattern: str) -> None:
    with pytest.raises(SerializationError, match=pattern):
        codec_for(annotation).loads(text)


def test_cycles_and_odd_failures() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="cycle"):
        codec_for(Any).dumps(loop)

    class Exploding:
        @property
        def value(self) -> int:
            raise RuntimeError("boom")

    exploding = dataclasses.make_dataclass("Exploding", [("value", int)], bases=(Exploding,))
    with pytest.raises(SerializationError, match="RuntimeError: boom"):
        codec_for(exploding).dumps(exploding.__new__(exploding))
    with pytest.raises(SerializationError, match="NoReturn"):
        codec_for(typing.NoReturn).dumps(None)


def test_lone_surrogates_are_escaped() -> None:
    text = codec_for(str).dumps("a\ud800é")
    assert text == '"a\\ud800\\u00e9"'
    assert codec_for(str).loads(text) == "a\ud800é"


# --------------------------------------------------------------------------- return_codec


def test_return_codec_uses_annotation() -> None:
    async def step() -> list[User]:
        return []

    def untyped():  # type: ignore[no-untyped-def]
        return None

    codec = return_codec(step)
    assert isinstance(codec, Codec)
    roundtrip_value = [make_user()]
    assert_same(codec.loads(codec.dumps(roundtrip_value)), roundtrip_value)
    assert codec.annotation == list[User]
    any_codec = return_codec(untyped)
    assert any_codec.loads(any_codec.dumps((1, 2))) == (1, 2)


def test_return_codec_forward_reference_failure_is_lazy() -> None:
    def step() -> DefinedNowhere:  # type: ignore[name-defined]  # noqa: F821
        raise AssertionError

    codec = return_codec(step)  # must not raise at decoration/import time
    with pytest.raises(SerializationError) as info:
        codec.dumps(1)
    msg = str(info.value)
    assert "test_serde" in msg and "step" in msg and "DefinedNowhere" in msg


def test_return_codec_forward_reference_resolves_later() -> None:
    def step() -> LaterDefined:  # noqa: F821
        raise AssertionError

    codec = return_codec(step)
    with pytest.raises(SerializationError):
        codec.dumps(None)
    globals()["LaterDefined"] = Address  # the module finishes importing
    try:
        assert_same(codec.loads(codec.dumps(Address("a", "b"))), Address("a", "b"))
    finally:
        del globals()["LaterDefined"]


# --------------------------------------------------------------------------- args_codec


async def durable_fn(
    a: int, /, b: dt.date, *rest: Decimal, flag: bool = False, **extra: uuid.UUID
) -> None: ...


def test_args_codec_roundtrip() -> None:
    codec = args_codec(durable_fn)
    assert isinstance(codec, ArgsCodec)
    args = (1, dt.date(2020, 1, 1), Decimal("0.1"), Decimal("2"))
    kwargs = {"flag": True, "trace": uuid.UUID(int=9)}
    text = codec.dumps(args, kwargs)
    assert json.loads(text) == {
        "args": [1, "2020-01-01", "0.1", "2"],
        "kwargs": {"flag": True, "trace": "00000000-0000-0000-0000-000000000009"},
    }
    back_args, back_kwargs = codec.loads(text)
    assert_same(back_args, args)
    assert_same(back_kwargs, kwargs)
    # keyword-passed positional-or-keyword parameter
    back = codec.loads(codec.dumps((1,), {"b": dt.date(2021, 1, 1)}))
    assert_same(back, ((1, dt.date(2021, 1, 1)), {}))


def test_args_codec_is_lazy() -> None:
    def fn(x: NotYetDefined) -> None: ...  # noqa: F821

    codec = args_codec(fn)  # no error at decoration time
    with pytest.raises(SerializationError, match="NotYetDefined"):
        codec.dumps((1,), {})


def test_args_codec_errors() -> None:
    def fn(user: User, n: int = 0) -> None: ...

    codec = args_codec(fn)
    # a positional-or-keyword parameter passed by keyword is replayed positionally
    assert_same(codec.loads(codec.dumps((make_user(),), {"n": 2})), ((make_user(), 2), {}))
    with pytest.raises(SerializationError, match=r"type str at n: .*annotation int"):
        codec.dumps((make_user(),), {"n": "2"})
    with pytest.raises(SerializationError, match="do not fit"):
        codec.dumps((), {})
    with pytest.raises(SerializationError, match="not a parameter"):
        codec.loads('{"args": [], "kwargs": {"zzz": 1}}')
    with pytest.raises(SerializationError, match="not valid JSON"):
        codec.loads("nope")


# --------------------------------------------------------------------------- fingerprint


class Opaque:
    pass


class WithRepr:
    def __init__(self, v: int) -> None:
        self.v = v

    def __repr__(self) -> str:
        return f"WithRepr({self.v})"


FP_ARGS = (
    (1, "a", 2.5, None, True, [1, (2, 3)], {"b": 1, "a": {3, 1, 2}}),
    {
        "when": dt.datetime(2020, 1, 1, tzinfo=UTC),
        "amount": Decimal("1.10"),
        "id": uuid.UUID(int=5),
        "blob": b"\x01",
        "user": Address("s", "c"),
        "names": frozenset({"x", "y", "z", "w"}),
        "color": Color.RED,
    },
)


def test_fingerprint_shape_and_speed() -> None:
    fp = fingerprint(*FP_ARGS)
    assert len(fp) == 16 and int(fp, 16) >= 0
    start = time.perf_counter()
    for _ in range(1000):
        fingerprint((1, "abc"), {"k": "v"})
    per_call = (time.perf_counter() - start) / 1000
    assert per_call < 100e-6  # measured ~3 us; loose bound to stay unflaky


def test_fingerprint_equal_and_different_args() -> None:
    assert fingerprint(*FP_ARGS) == fingerprint(*FP_ARGS)
    assert fingerprint((1,), {"a": 1, "b": 2}) == fingerprint((1,), {"b": 2, "a": 1})
    assert fingerprint(({"a": 1, "b": 2},), {}) == fingerprint(({"b": 2, "a": 1},), {})
    # equal values in different representations
    assert fingerprint((Decimal("1.0"),), {}) == fingerprint((Decimal("1.00"),), {})
    same_instant = dt.datetime(2020, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert fingerprint((same_instant,), {}) == fingerprint(
        (dt.datetime(2020, 1, 1, tzinfo=UTC),), {}
    )
    distinct = [
        ((1,), {}),
        ((2,), {}),
        (("1",), {}),
        ((1.0,), {}),
        ((True,), {}),
        ((None,), {}),
        (([1],), {}),
        ((), {"x": 1}),
        ((), {"x": 2}),
        ((1, 2), {}),
        ((2, 1), {}),
        ((Address("a", "b"),), {}),
        ((Address("a", "c"),), {}),
        ((WithRepr(1),), {}),
        ((WithRepr(2),), {}),
        ((dt.date(2020, 1, 1),), {}),
        (("2020-01-01",), {}),
        ((b"a",), {}),
        ((float("nan"),), {}),
    ]
    fps = [fingerprint(a, k) for a, k in distinct]
    assert len(set(fps)) == len(fps)


def test_fingerprint_has_no_memory_addresses() -> None:
    assert fingerprint((Opaque(),), {}) == fingerprint((Opaque(),), {})
    assert fingerprint((object(),), {}) == fingerprint((object(),), {})
    assert fingerprint((lambda: 1,), {}) == fingerprint((lambda: 1,), {})  # repr has "at 0x..."
    assert fingerprint((Opaque(),), {}) != fingerprint((WithRepr(1),), {})
    loop: list[Any] = []
    loop.append(loop)
    assert len(fingerprint((loop,), {})) == 16  # cycles do not crash

    class Raising:
        @property
        def value(self) -> int:
            raise RuntimeError("boom")

    raising = dataclasses.make_dataclass("Raising", [("value", int)], bases=(Raising,))
    assert len(fingerprint((raising.__new__(raising),), {})) == 16  # never fails a step


# Built identically here and in fresh interpreters (only stdlib + zart._serde, so
# the subprocesses start fast). String sets and dicts exercise hash randomization.
FP_SOURCE = """
import dataclasses, datetime as dt, enum, uuid
from decimal import Decimal

@dataclasses.dataclass
class Line:
    sku: str
    qty: int
    tags: frozenset

class Kind(enum.Enum):
    A = "a"

class Opaque:
    pass

ARGS = (
    ("order-1", 3, 2.5, None, True, [1, (2, 3)], {"words": set("the quick brown fox".split())}),
    {
        "when": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        "amount": Decimal("1.10"),
        "id": uuid.UUID(int=5),
        "blob": b"\\x01",
        "line": Line("x", 2, frozenset({"red", "green", "blue", "cyan"})),
        "kind": Kind.A,
        "opaque": Opaque(),
        "by_int": {3: "c", 1: "a", 2: "b"},
        "zeta": 1, "alpha": 2, "mid": 3,
    },
)
"""


def test_fingerprint_is_stable_across_processes() -> None:
    namespace: dict[str, Any] = {"__name__": "fp_fixture"}
    # dont_inherit: this module's `from __future__ import annotations` must not leak in.
    exec(compile(FP_SOURCE, "<fp>", "exec", dont_inherit=True), namespace)
    expected = fingerprint(*namespace["ARGS"])
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); ns = {'__name__': 'fp_fixture'};"
        "exec(sys.argv[2], ns); from zart._serde import fingerprint;"
        "print(fingerprint(*ns['ARGS']))"
    )
    outputs = set()
    for seed in ("1", "2"):  # plus this process, whose seed is random
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code, str(REPO), FP_SOURCE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs.add(proc.stdout.strip())
    assert outputs == {expected}


# --------------------------------------------------------------------------- performance


def test_small_dataclass_round_trip_is_fast() -> None:
    codec = codec_for(Address)
    value = Address("Rua A 1", "Lisboa", "1000-001")
    codec.loads(codec.dumps(value))
    start = time.perf_counter()
    for _ in range(2000):
        codec.loads(codec.dumps(value))
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 200e-6  # measured ~5 us; loose bound to stay unflaky
