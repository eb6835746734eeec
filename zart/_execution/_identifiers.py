"""What an execution id, step name, event name or durable name may be: one rule for
every backend, checked before anything is written.

* Execution ids and durable names: 1 to 255 characters.
* Step names (and the names of primitives, which share their name space) and event
  names: 1 to 512 characters.
* Any Unicode text except control characters (U+0000-U+001F, U+007F-U+009F) and lone
  surrogates, which PostgreSQL cannot store and terminals cannot show.

Lengths count characters (code points), as PostgreSQL's ``VARCHAR(n)`` does.
A child execution's id is derived from its parent's id and the call's name so that no
two (parent, name) pairs share one: see :func:`child_id`.
"""

from __future__ import annotations

import hashlib
import unicodedata

from zart._errors import IdentifierError, StepNameError

MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 512

_BAD_CATEGORIES = frozenset({"Cc", "Cs"})


def _problem(value: object, limit: int) -> str | None:
    """Why ``value`` is not a valid identifier, or None if it is."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > limit:
        return f"is {len(value)} characters long; the limit is {limit}"
    if value.isprintable():  # the common case, at C speed
        return None
    for index, char in enumerate(value):
        if unicodedata.category(char) in _BAD_CATEGORIES:
            return f"contains the control character U+{ord(char):04X} at position {index}"
    return None


def check_execution_id(value: object) -> str:
    problem = _problem(value, MAX_ID_LENGTH)
    if problem is not None:
        raise IdentifierError(f"execution id {_show(value)} {problem}")
    return value  # type: ignore[return-value]


def check_durable_name(value: object) -> str:
    problem = _problem(value, MAX_ID_LENGTH)
    if problem is not None:
        raise IdentifierError(f"durable name {_show(value)} {problem}")
    return value  # type: ignore[return-value]


def check_event_name(value: object) -> str:
    problem = _problem(value, MAX_NAME_LENGTH)
    if problem is not None:
        raise IdentifierError(f"event name {_show(value)} {problem}")
    return value  # type: ignore[return-value]


def check_step_name(value: object, what: str = "step name") -> str:
    problem = _problem(value, MAX_NAME_LENGTH)
    if problem is not None:
        raise StepNameError(f"{what} {_show(value)} {problem}")
    return value  # type: ignore[return-value]


def child_id(parent_id: str, name: str) -> str:
    """The id of the child execution that ``parent_id`` runs under ``name``.

    ``<parent id>/<name>`` with ``%`` and ``/`` in the name escaped (``%25``,
    ``%2F``), so the last ``/`` always separates parent from name and two different
    (parent, name) pairs never meet. An id that would pass the length limit keeps
    its beginning and ends in ``~`` and a hash of the whole, so it stays unique and
    stable across replays.
    """
    tail = name.replace("%", "%25").replace("/", "%2F")
    full = f"{parent_id}/{tail}"
    if len(full) <= MAX_ID_LENGTH:
        return full
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{full[: MAX_ID_LENGTH - len(digest) - 1]}~{digest}"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}…{text[-12:]}"
