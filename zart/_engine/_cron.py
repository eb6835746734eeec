"""A small 5-field cron parser: ``minute hour day-of-month month day-of-week``.

Supports ``*``, lists (``1,15``), ranges (``9-17``), steps (``*/5``, ``10-50/20``),
month names (``JAN``-``DEC``) and day names (``SUN``-``SAT``; 0 and 7 are Sunday),
and the macros ``@hourly``, ``@daily``/``@midnight``, ``@weekly``, ``@monthly``,
``@yearly``/``@annually``. As in Vixie cron, when both day-of-month and day-of-week
are restricted, a day matches if **either** does.

Times are evaluated in the schedule's timezone. A local time that does not exist
(spring-forward gap) is skipped; one that occurs twice (fall-back) runs once, at
its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from zart._errors import ZartError

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, low, high, names, first name's value)
FIELDS = [
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("day-of-month", 1, 31, None, 0),
    ("month", 1, 12, MONTHS, 1),
    ("day-of-week", 0, 7, DAYS, 0),
]
SEARCH_YEARS = 8  # far enough for "0 0 29 2 MON" (Feb 29 that is a Monday... or any Monday)


class CronError(ZartError, ValueError):
    """A malformed cron expression."""


def _value(text: str, field: str, low: int, high: int, names: list[str] | None, base: int) -> int:
    upper = text.upper()
    if names is not None and upper in names:
        return names.index(upper) + base
    if not text.isdigit():
        raise CronError(f"bad {field} value {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field} value {value} is out of range {low}-{high}")
    return value


def _field(
    text: str, field: str, low: int, high: int, names: list[str] | None, base: int
) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"empty item in {field} field {text!r}")
        rng, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"bad step {step_text!r} in {field} field")
            step = int(step_text)
        if rng == "*":
            start, stop = low, high
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start = _value(a, field, low, high, names, base)
            stop = _value(b, field, low, high, names, base)
            if stop < start:
                raise CronError(f"range {rng!r} in {field} field goes backwards")
        else:
            start = _value(rng, field, low, high, names, base)
            stop = high if slash else start
        values.update(range(start, stop + 1, step))
    return values


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_restricted: bool
    dow_restricted: bool
    # A 6-field expression (as the Rust original accepts) starts with seconds.
    seconds: frozenset[int] = frozenset({0})

    @classmethod
    def parse(cls, expression: str) -> Cron:
        text = MACROS.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        seconds = frozenset({0})
        if len(parts) == 6:
            seconds = frozenset(_field(parts[0], "second", 0, 59, None, 0))
            parts = parts[1:]
        if len(parts) != 5:
            raise CronError(
                f"cron expression {expression!r} must have 5 fields "
                "(minute hour day-of-month month day-of-week), or 6 with seconds first"
            )
        sets = [_field(p, *spec) for p, spec in zip(parts, FIELDS, strict=True)]
        weekdays = {0 if d == 7 else d for d in sets[4]}
        return cls(
            expression=expression,
            minutes=frozenset(sets[0]),
            hours=frozenset(sets[1]),
            days=frozenset(sets[2]),
            months=frozenset(sets[3]),
            weekdays=frozenset(weekdays),
            dom_restricted=not parts[2].startswith("*"),
            dow_restricted=not parts[4].startswith("*"),
            seconds=seconds,
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, after: datetime, tz: tzinfo = timezone.utc) -> datetime:
        """The first matching time strictly after ``after`` (aware), as an aware UTC datetime."""
        if after.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        local = after.astimezone(tz)
        day = local.date()
        for _ in range(366 * SEARCH_YEARS):
            if self._day_matches(day):
                found = self._first_on(day, after, tz)
                if found is not None:
                    return found
            day += timedelta(days=1)
        raise CronError(f"cron expression {self.expression!r} never matches")

    def _first_on(self, day: date, after: datetime, tz: tzinfo) -> datetime | None:
        """The first matching time of ``day`` strictly after ``after``, if any."""
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                for second in sorted(self.seconds):
                    naive = datetime(day.year, day.month, day.day, hour, minute, second)
                    utc = naive.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
                    if utc.astimezone(tz).replace(tzinfo=None) != naive:
                        continue  # in a DST gap: this local time does not exist
                    if utc > after:
                        return utc
        return None
