"""Dates, times and zones in typed JSON (zart._serde): a replayed value keeps its zone.

A ``datetime``/``time`` comes back equal, of the same type, with the same ``fold``
and the same tzinfo (a ``ZoneInfo`` with the same key, ``timezone.utc``, a fixed
``timezone`` with its name), or it is refused when it is stored. Rows written by
earlier versions still decode, and a stored row cannot name a file to read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import zoneinfo
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zart
from zart import SerializationError, TaskError, durable, step
from zart._serde import args_codec, codec_for

from runtime_app import SimulatedCrash

UTC = dt.timezone.utc
PARIS = ZoneInfo("Europe/Paris")
IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
MINUS5 = dt.timezone(dt.timedelta(hours=-5))
PLUS530 = dt.timezone(dt.timedelta(hours=5, minutes=30))

# 2024-10-27 02:30 happens twice in Paris (fold=0: CEST +02:00, fold=1: CET +01:00);
# 2024-03-31 02:30 does not happen at all (a wall time in the gap of the DST change).
AMBIGUOUS = dt.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS)
GAP = dt.datetime(2024, 3, 31, 2, 30, tzinfo=PARIS)


def assert_same_moment(a: Any, b: Any) -> None:
    """Equal, same type, same wall time, offset, fold and tzinfo (kind, key and name)."""
    assert type(a) is type(b), (type(a), type(b))
    assert a == b
    assert a.replace(tzinfo=None) == b.replace(tzinfo=None)  # the wall time
    assert a.fold == b.fold, "fold"
    assert type(a.tzinfo) is type(b.tzinfo), (type(a.tzinfo), type(b.tzinfo))
    assert a.utcoffset() == b.utcoffset()
    assert a.tzname() == b.tzname()
    assert getattr(a.tzinfo, "key", None) == getattr(b.tzinfo, "key", None)
    if a.tzinfo is UTC or isinstance(a.tzinfo, ZoneInfo):
        assert b.tzinfo is a.tzinfo  # the singleton / the cached ZoneInfo(key)


def roundtrip(annotation: Any, value: Any) -> Any:
    codec = codec_for(annotation)
    text = codec.dumps(value)
    back = codec.loads(text)
    assert codec.dumps(back) == text  # a replayed value stores the same row again
    return back


def _values() -> list[Any]:
    values: list[Any] = []
    for fold in (0, 1):
        for tz in (None, UTC, MINUS5, IST, PARIS):
            values.append(dt.datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=tz, fold=fold))
            values.append(dt.time(8, 30, 15, 7, tzinfo=tz, fold=fold))
        values += [AMBIGUOUS.replace(fold=fold), GAP.replace(fold=fold)]
    values += [
        dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(0), "GMT")),
        dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=3661, microseconds=5))),
        dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1), "a]b[c%5D")),
        dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("America/Argentina/Buenos_Aires")),
        dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("Etc/GMT+5")),
        dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC")),
        dt.datetime.max.replace(tzinfo=UTC),
        dt.datetime.min.replace(tzinfo=PARIS),
    ]
    return values


VALUES = _values()


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("under", ["annotation", "Any"])
def test_value_comes_back_with_its_zone_and_fold(value: Any, under: str) -> None:
    annotation = type(value) if under == "annotation" else Any
    assert_same_moment(value, roundtrip(annotation, value))


def test_ambiguous_hour_keeps_fold_and_offset() -> None:
    for fold, offset in ((0, 2), (1, 1)):
        value = AMBIGUOUS.replace(fold=fold)
        for annotation in (dt.datetime, Any, dt.date):
            back = roundtrip(annotation, value)
            assert back.tzinfo is PARIS and back.fold == fold
            assert back.utcoffset() == dt.timedelta(hours=offset)


def test_wall_time_in_a_gap_is_not_shifted() -> None:
    for fold in (0, 1):
        back = roundtrip(dt.datetime, GAP.replace(fold=fold))
        assert (back.hour, back.minute, back.fold) == (2, 30, fold)
        assert back.utcoffset() == GAP.replace(fold=fold).utcoffset()


def test_time_with_a_zone_is_not_naive() -> None:
    for annotation in (dt.time, Any):
        back = roundtrip(annotation, dt.time(9, 0, tzinfo=PARIS))
        assert back.tzinfo is PARIS


def test_named_fixed_offset_keeps_its_name() -> None:
    for value in (dt.datetime(2024, 1, 1, 9, tzinfo=IST), dt.time(9, tzinfo=IST)):
        for annotation in (type(value), Any):
            back = roundtrip(annotation, value)
            assert type(back.tzinfo) is dt.timezone and back.tzname() == "IST"
            assert back.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_utc_and_naive_are_unchanged() -> None:
    assert roundtrip(dt.datetime, dt.datetime(2024, 1, 1, tzinfo=UTC)).tzinfo is UTC
    assert roundtrip(dt.time, dt.time(1, tzinfo=UTC)).tzinfo is UTC
    naive = roundtrip(dt.datetime, dt.datetime(2024, 1, 1, 1, fold=1))
    assert naive.tzinfo is None and naive.fold == 1
    assert roundtrip(Any, dt.time(1, 2)).tzinfo is None


def test_stored_forms() -> None:
    def row(annotation: Any, value: Any) -> Any:
        return json.loads(codec_for(annotation).dumps(value))

    # Unchanged from earlier versions: naive, UTC, unnamed offsets, dates.
    assert row(dt.datetime, dt.datetime(2024, 1, 2, 3, 4)) == "2024-01-02T03:04:00"
    assert row(dt.datetime, dt.datetime(2024, 1, 2, tzinfo=UTC)) == "2024-01-02T00:00:00+00:00"
    assert row(dt.time, dt.time(8, tzinfo=MINUS5)) == "08:00:00-05:00"
    assert row(dt.date, dt.date(2024, 2, 29)) == "2024-02-29"
    assert row(Any, dt.date(2024, 2, 29)) == {"$date": "2024-02-29"}
    assert row(dt.datetime, dt.datetime(2024, 7, 1, tzinfo=PARIS)) == (
        "2024-07-01T00:00:00+02:00[Europe/Paris]"
    )
    # New suffixes, only where the ISO text alone would lose something.
    assert row(dt.datetime, AMBIGUOUS.replace(fold=1)) == (
        "2024-10-27T02:30:00+01:00[Europe/Paris][_fold=1]"
    )
    assert row(dt.time, dt.time(9, tzinfo=PARIS)) == "09:00:00[Europe/Paris]"
    assert row(Any, dt.time(9, tzinfo=IST)) == {"$time": "09:00:00+05:30[_tzname=IST]"}
    assert row(dt.datetime, dt.datetime(2024, 1, 1, fold=1)) == "2024-01-01T00:00:00[_fold=1]"


def test_date_is_unaffected() -> None:
    for annotation in (dt.date, Any, list[dt.date], dict[dt.date, int]):
        value: Any = dt.date(2024, 2, 29)
        if annotation == list[dt.date]:
            value = [value]
        elif annotation == dict[dt.date, int]:
            value = {value: 1}
        back = roundtrip(annotation, value)
        assert back == value and type(back) is type(value)


@dataclasses.dataclass
class Meeting:
    starts: dt.datetime
    opens: dt.time
    day: dt.date
    reminders: list[dt.datetime]
    by_zone: dict[str, dt.datetime | None]


def test_nested_values_keep_their_zones() -> None:
    meeting = Meeting(
        starts=AMBIGUOUS.replace(fold=1),
        opens=dt.time(9, tzinfo=PARIS, fold=1),
        day=dt.date(2024, 10, 27),
        reminders=[GAP, dt.datetime(2024, 1, 1, tzinfo=IST)],
        by_zone={"paris": AMBIGUOUS, "none": None},
    )
    back = roundtrip(Meeting, meeting)
    assert_same_moment(meeting.starts, back.starts)
    assert_same_moment(meeting.opens, back.opens)
    for a, b in zip(meeting.reminders, back.reminders, strict=True):
        assert_same_moment(a, b)
    assert_same_moment(AMBIGUOUS, back.by_zone["paris"])
    tagged = roundtrip(Any, {"k": [AMBIGUOUS.replace(fold=1), (dt.time(1, tzinfo=IST),)]})
    assert_same_moment(AMBIGUOUS.replace(fold=1), tagged["k"][0])
    assert_same_moment(dt.time(1, tzinfo=IST), tagged["k"][1][0])
    keyed = roundtrip(dict[dt.datetime, int], {AMBIGUOUS.replace(fold=1): 1})
    assert_same_moment(AMBIGUOUS.replace(fold=1), next(iter(keyed)))


zoned = st.datetimes(
    timezones=st.none() | st.just(UTC) | st.just(IST) | st.timezones(), allow_imaginary=True
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zoned, st.integers(0, 1))
def test_property_any_zone_any_fold(value: dt.datetime, fold: int) -> None:
    value = value.replace(fold=fold)
    for annotation in (dt.datetime, Any):
        assert_same_moment(value, roundtrip(annotation, value))
    t = value.timetz()
    assert_same_moment(t, roundtrip(dt.time, t))


# --------------------------------------------------------------------------- refused


class Fixed(dt.tzinfo):
    """A custom tzinfo: replay could not rebuild it."""

    def utcoffset(self, d: Any) -> dt.timedelta:
        return dt.timedelta(hours=3)

    def tzname(self, d: Any) -> str:
        return "X"

    def dst(self, d: Any) -> dt.timedelta:
        return dt.timedelta(0)


class MyZone(ZoneInfo):
    """A ZoneInfo subclass: would come back as a plain ZoneInfo."""


def _paris_tzif() -> io.BytesIO:
    """The TZif data of Europe/Paris, from the system tz database or the tzdata package."""
    for root in zoneinfo.TZPATH:
        path = Path(root, "Europe", "Paris")
        if path.is_file():
            return io.BytesIO(path.read_bytes())
    return io.BytesIO(resources.files("tzdata.zoneinfo.Europe").joinpath("Paris").read_bytes())


def _unrepresentable() -> list[Any]:
    keyless = ZoneInfo.from_file(_paris_tzif())
    dotted = ZoneInfo.from_file(_paris_tzif(), key="../../etc/Paris")
    unknown = ZoneInfo.from_file(_paris_tzif(), key="Mars/Olympus_Mons")
    return [
        pytest.param(Fixed(), "Fixed", id="custom-tzinfo"),
        pytest.param(keyless, "from_file without a key", id="from-file-no-key"),
        pytest.param(dotted, "invalid time zone key", id="from-file-path-key"),
        pytest.param(unknown, "unknown time zone", id="from-file-unknown-key"),
        pytest.param(MyZone("Europe/Paris"), "MyZone", id="zoneinfo-subclass"),
    ]


@pytest.mark.parametrize(("tz", "why"), _unrepresentable())
def test_unrepresentable_tzinfo_is_refused(tz: dt.tzinfo, why: str) -> None:
    cases: list[tuple[Any, Any, str]] = [
        (dt.datetime, dt.datetime(2024, 1, 1, tzinfo=tz), "at result:"),
        (dt.time, dt.time(1, tzinfo=tz), "at result:"),
        (Any, {"when": [dt.datetime(2024, 1, 1, tzinfo=tz)]}, "at result['when'][0]:"),
        (dt.date, dt.datetime(2024, 1, 1, tzinfo=tz), "at result:"),
        (dt.datetime | str, dt.datetime(2024, 1, 1, tzinfo=tz), "at result:"),
        (Meeting, Meeting(GAP, dt.time(1, tzinfo=tz), dt.date(2024, 1, 1), [], {}), ".opens:"),
    ]
    for annotation, value, where in cases:
        with pytest.raises(SerializationError) as info:
            codec_for(annotation).dumps(value)
        message = str(info.value)
        assert where in message, message
        assert "tzinfo of type" in message and type(tz).__qualname__ in message, message
        assert why in message, message
        assert "ZoneInfo('Europe/Paris')" in message and "timezone(" in message, message


def test_dateutil_zones_are_refused() -> None:
    tz = pytest.importorskip("dateutil.tz")
    for zone in (tz.gettz("Europe/Paris"), tz.tzutc(), tz.tzoffset("IST", 19800)):
        with pytest.raises(SerializationError, match="tzinfo of type dateutil"):
            codec_for(dt.datetime).dumps(dt.datetime(2024, 1, 1, tzinfo=zone))


def test_pytz_zones_are_refused() -> None:
    pytz = pytest.importorskip("pytz")
    value = pytz.timezone("Europe/Paris").localize(dt.datetime(2024, 1, 1))
    with pytest.raises(SerializationError, match="tzinfo of type pytz"):
        codec_for(Any).dumps(value)


def test_refused_argument_names_the_parameter() -> None:
    def takes(when: dt.datetime, *, opens: dt.time) -> None: ...

    with pytest.raises(SerializationError, match=r"at opens: its tzinfo of type .*Fixed"):
        args_codec(takes).dumps((GAP,), {"opens": dt.time(1, tzinfo=Fixed())})


# --------------------------------------------------------------------------- stored rows


@pytest.mark.parametrize(
    ("annotation", "row", "expected"),
    [
        (dt.datetime, '"2024-01-01T00:00:00+05:30"', dt.datetime(2024, 1, 1, tzinfo=PLUS530)),
        (dt.datetime, '"2024-01-01T00:00:00"', dt.datetime(2024, 1, 1)),
        (dt.datetime, '"2024-01-01T00:00:00+00:00"', dt.datetime(2024, 1, 1, tzinfo=UTC)),
        (dt.time, '"08:00:00+02:00"', dt.time(8, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
        (dt.time, '"08:00:00"', dt.time(8)),
        (Any, '{"$datetime":"2024-01-01T00:00:00-05:00"}', dt.datetime(2024, 1, 1, tzinfo=MINUS5)),
        (Any, '{"$time":"08:00:00"}', dt.time(8)),
        (Any, '{"$date":"2024-01-01"}', dt.date(2024, 1, 1)),
        # Written before fold was stored: the offset picks the fold.
        (dt.datetime, '"2024-10-27T02:30:00+01:00[Europe/Paris]"', AMBIGUOUS.replace(fold=1)),
        (dt.datetime, '"2024-10-27T02:30:00+02:00[Europe/Paris]"', AMBIGUOUS),
    ],
)
def test_rows_of_earlier_versions_decode_as_before(
    annotation: Any, row: str, expected: Any
) -> None:
    back = codec_for(annotation).loads(row)
    assert back == expected and type(back) is type(expected)
    if isinstance(expected, (dt.datetime, dt.time)):
        assert_same_moment(expected, back)


def test_offset_that_no_longer_fits_the_zone_keeps_the_instant() -> None:
    # E.g. the zone's rules changed after the row was written.
    back = codec_for(dt.datetime).loads('"2024-07-01T12:00:00+05:00[Europe/Paris]"')
    assert back.tzinfo is PARIS
    assert back == dt.datetime(2024, 7, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=5)))


@pytest.mark.parametrize(
    "key",
    [
        "../../../../etc/passwd",
        "/etc/localtime",
        "Europe/../../../etc/passwd",
        "Europe/./Paris",
        "Europe//Paris",
        "zone.tab",
        "tzdata.zoneinfo",
        "Europe/Paris/",
        "C:\\\\Windows",
        "",
        "A" * 300,
        "Europe/Paris\\u0000",
    ],
)
def test_path_like_zone_keys_are_never_opened(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def spy(k: str) -> Any:
        opened.append(k)
        raise AssertionError("ZoneInfo must not be called")

    monkeypatch.setattr(zoneinfo, "ZoneInfo", spy)
    for annotation, row in (
        (dt.datetime, f'"2024-01-01T00:00:00+01:00[{key}]"'),
        (dt.time, f'"08:00:00[{key}]"'),
        (Any, f'{{"$datetime":"2024-01-01T00:00:00+01:00[{key}]"}}'),
    ):
        with pytest.raises(SerializationError, match="invalid time zone key"):
            codec_for(annotation).loads(row)
    assert opened == []


@pytest.mark.parametrize(
    ("annotation", "row", "match"),
    [
        (dt.datetime, '"2024-01-01T00:00:00+01:00[Mars/Olympus_Mons]"', "unknown time zone"),
        (dt.datetime, '"2024-01-01T00:00:00+01:00[_fold=2]"', "unexpected or repeated"),
        (dt.datetime, '"2024-01-01T00:00:00[_fold=1][_fold=1]"', "unexpected or repeated"),
        (dt.datetime, '"2024-01-01T00:00:00+01:00[u-ca=iso8601]"', "unexpected or repeated"),
        (dt.datetime, '"2024-01-01T00:00:00+01:00[UTC][Europe/Paris]"', "unexpected or repeated"),
        (dt.datetime, '"2024-01-01T00:00:00[_tzname=IST]"', "without a UTC offset"),
        (dt.datetime, '"2024-01-01T00:00:00+01:00[UTC][_tzname=X]"', "both a zone"),
        (dt.time, '"08:00:00[Europe/Paris][_tzname=X]"', "both a zone"),
        (dt.time, '"[Europe/Paris]"', "ISO 8601 text before"),
        (dt.datetime, '"2024-01-01T00:00:00]"', "ISO 8601 text before"),
    ],
)
def test_malformed_rows_are_clear_errors(annotation: Any, row: str, match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        codec_for(annotation).loads(row)


# --------------------------------------------------------------------------- end to end


def _zoned_flow(prefix: str, value: Any, calls: list[int], seen: list[Any]) -> Any:
    state = {"crash": True}

    async def produce() -> Any:
        calls.append(1)
        return value

    produce.__annotations__["return"] = Meeting if isinstance(value, Meeting) else Any
    produce_step = step(f"{prefix}-produce")(produce)

    @durable(f"{prefix}-flow")
    async def flow(when: dt.datetime) -> str:
        seen.append((when, await produce_step()))
        if state["crash"]:
            state["crash"] = False
            raise SimulatedCrash  # the process "dies" after the checkpoint
        return "ok"

    return flow


@pytest.fixture
def db_file(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'zones.db'}"


MEETING = Meeting(
    starts=AMBIGUOUS.replace(fold=1),
    opens=dt.time(9, tzinfo=PARIS),
    day=dt.date(2024, 10, 27),
    reminders=[GAP, GAP.replace(fold=1), dt.datetime(2024, 1, 1, tzinfo=IST)],
    by_zone={"utc": dt.datetime(2024, 1, 1, tzinfo=UTC), "naive": dt.datetime(2024, 1, 1)},
)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(MEETING, id="dataclass"),
        pytest.param([AMBIGUOUS.replace(fold=1), dt.time(9, tzinfo=PARIS), GAP], id="any"),
    ],
)
def test_replay_in_a_new_process_keeps_zone_and_fold(db_file: str, value: Any) -> None:
    calls: list[int] = []
    seen: list[Any] = []
    flow = _zoned_flow("zones-e2e", value, calls, seen)
    when = AMBIGUOUS.replace(fold=1)
    with zart.Zart(db_file) as first, pytest.raises(SimulatedCrash):
        first.run(flow, when, execution_id="zones-1")
    with zart.Zart(db_file) as second:  # a fresh engine on the same file: it replays
        assert second.run(flow, when, execution_id="zones-1") == "ok"
    assert calls == [1]  # the step ran once; the second run read its checkpoint
    (_, first_value), (stored_when, replayed) = seen
    assert_same_moment(when, stored_when)  # the durable's input, decoded from its row
    pairs = list(zip(_moments(first_value), _moments(replayed), strict=True))
    assert len(pairs) >= 3
    for original, back in pairs:
        assert_same_moment(original, back)
        assert back.fold == original.fold
        assert getattr(back.tzinfo, "key", None) == getattr(original.tzinfo, "key", None)


def _moments(value: Any) -> list[Any]:
    if isinstance(value, Meeting):
        return [value.starts, value.opens, *value.reminders, *value.by_zone.values()]
    return list(value)


def test_refused_step_result_stores_nothing(db_file: str) -> None:
    @step("zones-bad-produce")
    async def produce() -> dt.datetime:
        return dt.datetime(2024, 1, 1, tzinfo=Fixed())

    @durable("zones-bad")
    async def flow() -> None:
        await produce()

    with zart.Zart(db_file) as app:
        with pytest.raises(TaskError) as info:
            app.run(flow, execution_id="zones-bad")
        message = str(info.value)
        assert "zones-bad-produce" in message and "Fixed" in message, message
        assert app.steps("zones-bad") == []  # no checkpoint for the refused value


def test_refused_input_writes_nothing(db_file: str) -> None:
    @durable("zones-bad-input")
    async def flow(when: dt.datetime) -> int:
        return 1

    with zart.Zart(db_file) as app:
        with pytest.raises(SerializationError, match=r"at when: its tzinfo of type .*Fixed"):
            app.run(flow, dt.datetime(2024, 1, 1, tzinfo=Fixed()), execution_id="zones-in")
        assert app.list() == []
