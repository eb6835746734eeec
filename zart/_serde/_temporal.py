"""Text forms of ``datetime`` and ``time`` values that keep their tzinfo and ``fold``.

A value is stored as its ``isoformat()`` (the wall time, plus the UTC offset when it
has one), followed by RFC 9557-style suffixes only where the ISO text alone would
lose something:

* ``[Area/City]``: the tzinfo is ``zoneinfo.ZoneInfo("Area/City")`` (RFC 9557's
  time-zone annotation). A ``datetime`` keeps its offset before it, so the text
  names the instant: ``"2024-10-27T02:30:00+01:00[Europe/Paris][_fold=1]"``.
* ``[_tzname=NAME]``: the tzinfo is ``datetime.timezone(offset, NAME)``, a fixed
  offset with an explicit name (``%``, ``[`` and ``]`` in NAME are written ``%25``,
  ``%5B`` and ``%5D``).
* ``[_fold=1]``: the value's ``fold`` is 1 (PEP 495).

Naive values, ``timezone.utc`` and unnamed ``timezone(offset)`` values with
``fold=0`` get no suffix: their text is the plain ISO form, as in earlier rows.
Any other tzinfo (a custom ``tzinfo`` subclass, pytz or dateutil zones, a
``ZoneInfo`` subclass or one built by ``ZoneInfo.from_file`` without a key) could
not come back as the same tzinfo and is refused when encoding.

Decoding constructs only ``timezone(offset[, name])`` and ``ZoneInfo(key)``, and
only for a key that looks like an IANA name (``/``-separated names of letters,
digits, ``_``, ``+``, ``-``; no ``.``, no leading ``/``): a stored row cannot make
decoding read an arbitrary file or import a module.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
from typing import Any

from zart._serde._node import CACHE_MAX, Fail, Refused, vname

_UTC = _dt.timezone.utc
_FOLD = "[_fold=1]"
_NAME = "_tzname="
_KEY_MAX = 255
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_+-]*(?:/[A-Za-z_][A-Za-z0-9_+-]*)*")
_ESCAPES = {"%25": "%", "%5B": "[", "%5D": "]"}
_ESCAPED = re.compile(r"%(?:25|5B|5D)")
# ZoneInfo keys already checked by an encode (valid, and loadable by ZoneInfo(key)).
_CHECKED_KEYS: set[str] = set()

USE_INSTEAD = (
    "use a zoneinfo.ZoneInfo with an IANA key (ZoneInfo('Europe/Paris')) for a named zone, "
    "or datetime.timezone(offset[, name]) for a fixed offset (convert with "
    ".astimezone(...) or .replace(tzinfo=...))"
)


# --- encoding --------------------------------------------------------------------------


def dt_to(v: _dt.datetime) -> str:
    """ISO 8601 text of ``v``, with the suffixes its tzinfo and fold need."""
    tz = v.tzinfo
    if tz is None or tz is _UTC:
        return v.isoformat() if not v.fold else v.isoformat() + _FOLD
    return v.isoformat() + _tz_suffix(v, tz)


def time_to(v: _dt.time) -> str:
    """ISO 8601 text of a ``time``, with the suffixes its tzinfo and fold need."""
    tz = v.tzinfo
    if tz is None or tz is _UTC:
        return v.isoformat() if not v.fold else v.isoformat() + _FOLD
    return v.isoformat() + _tz_suffix(v, tz)


def _tz_suffix(v: _dt.datetime | _dt.time, tz: _dt.tzinfo) -> str:
    if type(tz) is _dt.timezone:
        args = tz.__getinitargs__()  # type: ignore[attr-defined]  # (offset[, name])
        if len(args) == 1:
            return _FOLD if v.fold else ""
        suffix = f"[{_NAME}{_escape(args[1])}]"
    else:
        suffix = f"[{_zone_key(v, tz)}]"
    return suffix + _FOLD if v.fold else suffix


def _zone_key(v: _dt.datetime | _dt.time, tz: _dt.tzinfo) -> str:
    """The key of a ZoneInfo ``tz`` that decoding can rebuild; refuses anything else."""
    zoneinfo = sys.modules.get("zoneinfo")
    if zoneinfo is None or type(tz) is not zoneinfo.ZoneInfo:
        raise _refuse(v, tz, "only ZoneInfo and timezone tzinfos can be restored as they were")
    key: Any = getattr(tz, "key", None)
    if key in _CHECKED_KEYS:
        return str(key)
    if key is None:
        raise _refuse(v, tz, "it was built by ZoneInfo.from_file without a key: no name to store")
    try:
        zone(key)
    except Fail as e:
        raise _refuse(v, tz, e.reason) from None
    if len(_CHECKED_KEYS) >= CACHE_MAX:
        _CHECKED_KEYS.clear()
    _CHECKED_KEYS.add(key)
    return str(key)


def _refuse(v: object, tz: _dt.tzinfo, why: str) -> Refused:
    t = type(tz)
    return Refused(
        f"its tzinfo of type {t.__module__}.{t.__qualname__} cannot be stored so that replay "
        f"returns the same tzinfo ({why}); {USE_INSTEAD}",
        vname(v),
    )


def _escape(name: str) -> str:
    return name.replace("%", "%25").replace("[", "%5B").replace("]", "%5D")


# --- decoding --------------------------------------------------------------------------


def zone(key: str) -> _dt.tzinfo:
    """``ZoneInfo(key)`` for an IANA-style ``key``; Fail for anything else."""
    if len(key) > _KEY_MAX or _KEY.fullmatch(key) is None:
        raise Fail(f"invalid time zone key {key!r}: expected an IANA name such as 'Europe/Paris'")
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(key)
    except Exception as e:  # ZoneInfoNotFoundError, a file that is not TZif data, ...
        raise Fail(
            f"unknown time zone {key!r} ({type(e).__name__}: {e}); is the IANA tz database "
            f"(or the tzdata package) installed?",
            cause=e,
        ) from None


def dt_from(s: str) -> _dt.datetime:
    """The ``datetime`` stored by :func:`dt_to` (also plain ISO text of older rows)."""
    if not s.endswith("]"):
        return _dt.datetime.fromisoformat(s)
    i = _suffix_start(s)
    base = _dt.datetime.fromisoformat(s[:i])
    key, name, fold = _suffixes(s[i:])
    if key is not None:
        if name is not None:
            raise Fail("a stored datetime has both a zone and a time zone name")
        return _in_zone(base, zone(key), fold)
    if name is not None:
        base = base.replace(tzinfo=_named(base.tzinfo, name))
    return base.replace(fold=fold) if fold else base


def _in_zone(base: _dt.datetime, tz: _dt.tzinfo, fold: int) -> _dt.datetime:
    offset = base.utcoffset()
    zoned = base.replace(tzinfo=tz, fold=fold)
    if offset is None or zoned.utcoffset() == offset:
        return zoned  # same wall time, fold and offset: the value as it was
    # A row written without its fold (older rows), or the zone's rules changed since it
    # was written: keep the stored instant, shown in the zone.
    return base.astimezone(tz)


def time_from(s: str) -> _dt.time:
    """The ``time`` stored by :func:`time_to` (also plain ISO text of older rows)."""
    if not s.endswith("]"):
        return _dt.time.fromisoformat(s)
    i = _suffix_start(s)
    base = _dt.time.fromisoformat(s[:i])
    key, name, fold = _suffixes(s[i:])
    tz = base.tzinfo
    if key is not None:
        if name is not None:
            raise Fail("a stored time has both a zone and a time zone name")
        tz = zone(key)  # the offset before it (a zone without DST changes has one) is its own
    elif name is not None:
        tz = _named(tz, name)
    return base.replace(tzinfo=tz, fold=fold)


def _suffix_start(s: str) -> int:
    i = s.find("[")
    if i <= 0:
        raise Fail("expected ISO 8601 text before the [...] suffixes")
    return i


def _suffixes(text: str) -> tuple[str | None, str | None, int]:
    """(zone key, time zone name, fold) of ``"[...][...]"`` suffixes."""
    key: str | None = None
    name: str | None = None
    fold = 0
    for part in text[1:-1].split("]["):
        if part == "_fold=1" and not fold:
            fold = 1
        elif part.startswith(_NAME) and name is None:
            name = _ESCAPED.sub(lambda m: _ESCAPES[m.group()], part[len(_NAME) :])
        elif key is None and "=" not in part and "[" not in part and "]" not in part:
            key = part
        else:
            raise Fail(f"unexpected or repeated suffix [{part}]")
    return key, name, fold


def _named(tz: _dt.tzinfo | None, name: str) -> _dt.timezone:
    offset = None if tz is None else tz.utcoffset(None)
    if offset is None:
        raise Fail(f"time zone name {name!r} stored without a UTC offset")
    return _dt.timezone(offset, name)
