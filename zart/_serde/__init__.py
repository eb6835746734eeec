"""Typed JSON serialization of step results and durable-function inputs.

A step's return value is checkpointed as JSON text and, on replay, must come back
*equal to* and *of the same type as* the original. JSON alone cannot say whether
``"2024-01-01"`` was a ``str`` or a ``date``, so decoding is driven by the step
function's return annotation: ``codec_for(list[User])`` knows that every element is
a ``User`` dataclass whose ``joined`` field is a ``datetime``.

Design
------
An annotation is *compiled once* into a tree of small closures (:class:`~zart._serde._node.Node`),
one encoder and one decoder per type. Encoding a value then only walks the value;
no annotation is inspected on the hot path. Errors are reported with the path
inside the value (``result[3].owner``): paths are built only while an error
propagates (each container appends its own segment), so the success path pays
nothing for them.

Pickle is never used and decoding never imports a class named in the stored data:
a database row must not be able to run code. Every class that decoding constructs
is one the annotation named.

Encodings (what a stored row looks like)
----------------------------------------
* ``None``/``bool``/``int``/``str``: JSON as is. ``float``: JSON number; NaN and
  the infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
* ``bytes``/``bytearray``: base64 string. ``Decimal``: its exact string.
  ``UUID``/``Path``: string. ``date``: ISO 8601 ``"2024-02-29"``.
  ``datetime``/``time``: ISO 8601 (``isoformat()``: the wall time, plus the UTC
  offset when there is one), followed by RFC 9557-style suffixes only where the ISO
  text alone would lose something (see "Dates, times and zones" below):
  ``"2024-10-27T02:30:00+01:00[Europe/Paris][_fold=1]"``.
  ``timedelta``: ``[days, seconds, microseconds]`` (exact).
* ``Enum``: its value. ``Literal``: the literal.
* ``list``/``tuple``/``set``/``frozenset``/``deque``: JSON array.
* ``dict[K, V]``: a JSON object when every key encodes to a string (``str``,
  ``UUID``, ``date``, ``Decimal``, string-valued enums, ...); otherwise (``int``,
  ``tuple``, ... keys) a JSON array of ``[key, value]`` pairs.
* dataclasses, ``NamedTuple``, ``TypedDict``: JSON object of fields. Pydantic v2
  models: ``model_dump(mode="json")`` / ``model_validate``.
* Unions: a member is chosen by trying members (an exact type match first). When
  the JSON kind of the encoding alone identifies that member on decoding (``int |
  None``, ``User | list[User]``), the value is stored bare; otherwise (two
  dataclasses, ``date | str``, ...) it is stored as ``{"$type": <member name>,
  "$value": ...}`` where the name is looked up among the union's own members.
* ``Any`` / ``object`` / no annotation: a self-describing encoding. JSON-native
  values are stored as is; ``tuple``, ``set``, ``frozenset``, ``bytes``,
  ``bytearray``, ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal``,
  ``UUID``, ``Path``, non-finite floats and dicts with non-string keys are tagged
  as one-key objects (``{"$decimal": "0.1"}``); a user dict that itself has one
  ``$``-key is escaped as ``{"$dict": {...}}``. Dataclasses, models, enums and
  other classes are refused under ``Any``: decoding them would require importing a
  class named in the data.

Type choices (documented contract)
----------------------------------
* The annotation is the contract. An instance of a *subclass* of the annotated
  type is stored as the annotated type and comes back as the annotated type (a
  dataclass subclass is stored by the declared class's fields; an ``IntEnum`` under
  ``int`` comes back as ``int``; a ``NamedTuple`` under ``tuple[int, ...]`` as a
  ``tuple``). Annotate the precise type to keep the subclass.
* ``bool`` is kept under ``int``/``float`` (JSON distinguishes ``true`` from ``1``),
  and an ``int`` under ``float`` comes back as ``int`` (the stored JSON number type
  decides): both are "equal and of the same type" as what the step returned.
* A ``datetime`` under a ``date`` annotation is kept as a ``datetime`` (dropping
  its time silently would be worse than keeping the subclass).
* Dataclasses are rebuilt by calling the class with its ``init`` fields (so
  ``__post_init__`` runs and derived attributes exist), then ``init=False`` fields
  are restored. Classes with ``InitVar`` pseudo-fields or ``init=False`` are rebuilt
  without calling ``__init__`` (``InitVar`` values are not stored, and
  ``__post_init__`` already transformed the stored fields). Unknown keys in a stored
  object are ignored and missing fields with defaults get their default, so adding
  or removing a defaulted field does not break replay of old rows.

Dates, times and zones
----------------------
A ``datetime`` or ``time`` comes back equal, of the same type, with the same
``fold`` and the same kind of tzinfo; otherwise it is refused when encoding:

* naive: stays naive (``"2024-01-01T09:00:00"``);
* ``timezone.utc`` and unnamed ``timezone(offset)``: the offset
  (``"...T09:00:00+05:30"``) decodes to ``timezone.utc`` / ``timezone(offset)``;
* a named ``timezone(offset, "IST")``: ``"...+05:30[_tzname=IST]"`` (``%``, ``[``
  and ``]`` in the name escaped as ``%25``, ``%5B``, ``%5D``);
* ``zoneinfo.ZoneInfo(key)``: ``"...+01:00[Europe/Paris]"`` for a ``datetime``
  (wall time, offset and zone: also a wall time in the gap of a DST change), and
  ``"09:00:00[Europe/Paris]"`` for a ``time``; decodes to ``ZoneInfo(key)`` (the
  cached instance, from this machine's tz database);
* ``fold=1`` (PEP 495; e.g. the second 02:30 of a DST change) adds ``[_fold=1]``.

Refused (``SerializationError`` naming the path and the tzinfo's type, before
anything is stored): any other tzinfo, because replay could not rebuild it: custom
``tzinfo`` subclasses, pytz and dateutil zones, ``ZoneInfo`` subclasses, a
``ZoneInfo.from_file`` zone without a key, and a key that is not an IANA-style name
or that ``ZoneInfo(key)`` cannot load. Convert with ``.astimezone(ZoneInfo(...))``
or ``.replace(tzinfo=timezone(...))``. ``date`` has no tzinfo and is unaffected.

Decoding builds only ``timezone(offset[, name])`` and ``ZoneInfo(key)`` for a key
of ``/``-separated names made of letters, digits, ``_``, ``+``, ``-`` (no ``.``, no
leading ``/``, at most 255 characters): a row cannot make decoding read a file
outside the tz database. Older rows decode as before: plain ISO text (fixed
offsets), and ``[zone]`` rows written without ``[_fold=1]`` (the stored offset
then picks the fold). When a zone's rules changed since the row was written (the
stored offset no longer fits the wall time), the stored instant is kept.

Limitations
-----------
* Sets are stored in iteration order (not sorted): equal sets may produce
  different rows; decoding is unaffected. :func:`fingerprint` does sort.
* A ``ZoneInfo`` is stored by its key: one built with ``ZoneInfo.from_file(f,
  key=...)`` or ``ZoneInfo.no_cache`` comes back as ``ZoneInfo(key)`` (equal
  values; the zone's rules are this machine's).
* Pydantic models store their own ``datetime`` fields: pydantic's JSON mode keeps
  only the offset, so an aware datetime in a model comes back with pydantic's
  fixed-offset ``TzInfo`` (equal, same instant). Use a dataclass to keep the zone.
* Not supported (SerializationError on first use): ``defaultdict``, ``Callable``,
  ``type[...]``, ``complex``, and classes that are not dataclasses, NamedTuples,
  TypedDicts, pydantic models, enums or subclasses of ``str``/``int``/``float``/
  ``bytes``/``PurePath``.
* Pydantic models round-trip as pydantic's own JSON mode does (a field typed
  ``Any`` holding a ``datetime`` comes back as a ``str``); fields whose
  serialization alias differs from their validation alias are not supported.
* Generic dataclasses resolve TypeVars through ``Box[int]`` and generic bases; one
  TypeVar bound differently at two levels of a hierarchy takes the most-derived
  binding.
* Union tags are class names: renaming a member of an ambiguous union (``Cat |
  Dog``) makes old rows tagged with the old name unreadable.


Package layout
--------------
Each module imports only from the ones listed before it:

* ``_node``: the compiled :class:`Node`, the internal failure carrying the error
  path, shared constants.
* ``_types``: annotation introspection (names, special forms, type hints).
* ``_temporal``: the text of ``datetime`` and ``time`` values, tzinfo and fold included.
* ``_scalars``: nodes for scalar types.
* ``_tagged``: the self-describing encoding used under ``Any``.
* ``_containers``, ``_unions``, ``_classes``: node factories that take the
  already-compiled nodes of their parts.
* ``_compile``: annotation -> node (the only module that recurses into annotations).
* ``_codec``: :class:`Codec`, :class:`ArgsCodec` and their caches.
* ``_fingerprint``: :func:`fingerprint` (needs only ``_node`` and ``_types``).
"""

from __future__ import annotations

from zart._serde._codec import ArgsCodec, Codec, args_codec, codec_for, return_codec
from zart._serde._fingerprint import fingerprint

__all__ = ["ArgsCodec", "Codec", "args_codec", "codec_for", "fingerprint", "return_codec"]
