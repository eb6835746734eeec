"""Routing of ``/api/executions/{id}[/{action}]``, where ids may hold any character.

An execution id (and a step name) is **one path segment, percent-encoded** (RFC 3986;
``encodeURIComponent`` in JavaScript, ``urllib.parse.quote(id, safe="")`` in Python):
``/`` is ``%2F``, ``%`` is ``%25``, a space ``%20``, ``é`` ``%C3%A9``. The server
routes on the raw request path, before any decoding, so an id ending in ``/steps`` or
``/cancel`` is told apart from the action of that name. For convenience an id written
with a raw ``/`` (``/api/executions/parent/child``) is still found when the path is not
ambiguous: its last segment is not an action name.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from zart._ops._internals import check_execution_id, check_step_name
from zart._ops.api._http import invalid

PREFIX = "/api/executions/"

# The actions on one execution, by method.
GET_ACTIONS = ("steps", "wait", "audit", "overview", "input", "result", "timeline")
POST_ACTIONS = ("cancel", "events", "retry-step", "restart", "rerun-from", "resume")
ACTIONS = frozenset(GET_ACTIONS + POST_ACTIONS)


@dataclass(frozen=True)
class Target:
    """What a path under ``/api/executions/`` names: an execution, an action on it, or
    one of its steps (``action == "steps"`` and ``step`` set)."""

    execution_id: str
    action: str = ""
    step: str | None = None


def raw_rest(scope_path: str, raw_path: bytes | None) -> str:
    """The still-encoded part of the request path after ``/api/executions/``."""
    raw = raw_path.decode("latin-1") if raw_path is not None else scope_path
    index = raw.find(PREFIX)
    return raw[index + len(PREFIX) :] if index >= 0 else ""


def _decode(segment: str, what: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise invalid(f"the {what} in the path is not percent-encoded UTF-8") from None


def parse_target(rest: str) -> Target:
    """The :class:`Target` of the encoded path ``rest``; ids and names are validated."""
    segments = rest.split("/")
    if len(segments) == 1:
        target = Target(_decode(segments[0], "execution id"))
    elif len(segments) == 2 and segments[1] in ACTIONS:
        target = Target(_decode(segments[0], "execution id"), segments[1])
    elif len(segments) == 3 and segments[1] == "steps":
        eid, step = _decode(segments[0], "execution id"), _decode(segments[2], "step name")
        target = Target(eid, "steps", check_step_name(step))
    elif segments[-1] in ACTIONS:  # an id written with raw "/"
        target = Target(_decode("/".join(segments[:-1]), "execution id"), segments[-1])
    else:
        target = Target(_decode("/".join(segments), "execution id"))
    check_execution_id(target.execution_id)
    return target
