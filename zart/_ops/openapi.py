"""The OpenAPI 3.1 document of the HTTP API (served at ``/openapi.json``).

Written by hand next to the routes of the ``api`` package; ``tests/test_ops_api.py`` checks
that every route is documented and every documented response matches what the
server really returns.
"""

from __future__ import annotations

import copy
from typing import Any

from zart import __version__
from zart._ops._internals import ALL_STATUSES

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_TIME = {"type": "string", "format": "date-time"}
_STATUS = {"type": "string", "enum": list(ALL_STATUSES)}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A JSON object schema; ``required`` lists the keys it always has."""
    schema: dict[str, Any] = {"type": "object"}
    if required is not None:
        schema["required"] = required
    schema["properties"] = properties
    return schema


def _record(properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON object schema whose keys are all always there."""
    return _object(properties, list(properties))


SCHEMAS: dict[str, Any] = {
    "Error": _record({"error": _STR, "message": _STR}),
    "Execution": _record(
        {
            "id": _STR,
            "durable_name": _STR,
            "status": _STATUS,
            "attempts": _INT,
            "recoveries": {**_INT, "description": "runs that took over from a lost owner"},
            "version": {**_NULLABLE_STR, "description": "code version that created it"},
            "ran_versions": {
                "type": "array",
                "items": _STR,
                "description": "code versions that ran it, in order",
            },
            "created_at": _TIME,
            "updated_at": _TIME,
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "wake_at": _NULLABLE_TIME,
            "duration": {"type": ["number", "null"], "description": "seconds"},
            "error": {**_NULLABLE_STR, "description": "'Type: message' of a failure"},
            "lease_owner": _NULLABLE_STR,
            "parent_id": _NULLABLE_STR,
            "paused_by": {
                "type": ["integer", "null"],
                "description": "the pause rule holding it (status paused)",
            },
        }
    ),
    "ExecutionDetail": {
        "allOf": [
            _ref("Execution"),
            _record(
                {
                    "input": {"description": 'stored input: {"args": [...], "kwargs": {...}}'},
                    "result": {"description": "stored result (JSON), null until completed"},
                }
            ),
        ]
    },
    "ExecutionPage": _record(
        {
            "items": _list_of("Execution"),
            "limit": _INT,
            "offset": _INT,
            "next_offset": {"type": ["integer", "null"]},
        }
    ),
    "Step": _record(
        {
            "name": _STR,
            "seq": _INT,
            "kind": _STR,
            "status": _STR,
            "attempts": _INT,
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "duration": {"type": ["number", "null"]},
            "output_preview": _NULLABLE_STR,
            "error": _NULLABLE_STR,
        }
    ),
    "StepList": _record({"execution_id": _STR, "items": _list_of("Step")}),
    "ExecutionOverview": {
        "allOf": [
            _ref("Execution"),
            _record(
                {
                    "input_size": {"type": "integer", "description": "characters of stored JSON"},
                    "input_preview": _NULLABLE_STR,
                    "result_size": {"type": ["integer", "null"]},
                    "result_preview": _NULLABLE_STR,
                }
            ),
        ]
    },
    "ExecutionInput": _record({"execution_id": _STR, "input": {"description": "stored input"}}),
    "ExecutionResult": _record(
        {"execution_id": _STR, "status": _STATUS, "result": {"description": "null until done"}}
    ),
    "Timeline": _record(
        {
            "execution_id": _STR,
            "status": _STATUS,
            "origin": {"type": "number", "description": "Unix seconds; step starts count from it"},
            "count": _INT,
            "kinds": {"type": "array", "items": _STR},
            "statuses": {"type": "array", "items": _STR},
            "name": {"type": "array", "items": _STR},
            "seq": {"type": "array", "items": _INT},
            "kind": {"type": "array", "items": _INT, "description": "index into kinds"},
            "step_status": {"type": "array", "items": _INT, "description": "index into statuses"},
            "attempts": {"type": "array", "items": _INT},
            "start": {"type": "array", "items": {"type": ["number", "null"]}, "description": "ms"},
            "duration": {"type": "array", "items": {"type": ["number", "null"]}},
            "errors": {"type": "object", "description": "step index → error line"},
        }
    ),
    "StepDetail": _record(
        {
            "execution_id": _STR,
            "name": _STR,
            "seq": _INT,
            "kind": _STR,
            "status": _STR,
            "attempts": _INT,
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "duration": {"type": ["number", "null"]},
            "fingerprint": _NULLABLE_STR,
            "output_size": {"type": ["integer", "null"]},
            "output": {"description": "the stored output (JSON), in full"},
            "error": {
                "type": ["object", "null"],
                "description": "type, message, traceback (and details) as stored",
            },
            "error_line": _NULLABLE_STR,
        }
    ),
    "StartRequest": _object(
        {
            "durable": {"type": "string", "description": "registered durable name"},
            "input": {"description": "array (positional), object (keyword) or single value"},
            "id": {"type": "string", "description": "idempotency: an existing id is returned"},
        },
        ["durable"],
    ),
    "CancelResult": _record({"id": _STR, "cancelled": {"type": "boolean"}, "status": _STATUS}),
    "EventRequest": _object({"name": _STR, "payload": {}}, ["name"]),
    "EventResult": _record({"id": _STR, "name": _STR, "delivered": {"type": "boolean"}}),
    "Counts": _record(
        {"counts": _record({st: {"type": "integer"} for st in ALL_STATUSES}), "total": _INT}
    ),
    "Names": _record({"items": {"type": "array", "items": _STR}}),
    "Queue": _record(
        {
            "name": _STR,
            "pending": {**_INT, "description": "depth: pending executions (delayed included)"},
            "running": _INT,
            "concurrency": {"type": ["integer", "null"], "description": "across all workers"},
            "worker_concurrency": {"type": ["integer", "null"], "description": "per worker"},
            "rate_limit": {
                "oneOf": [{"type": "null"}, _record({"count": _INT, "per": {"type": "number"}})],
                "description": "starts per period (seconds)",
            },
            "priority": {"type": "boolean"},
            "partition_key": {"type": "boolean", "description": "limits apply per partition"},
            "defined": {"type": "boolean", "description": "its limits are stored"},
        }
    ),
    "QueueList": _record({"items": _list_of("Queue")}),
    "Health": _record({"status": _STR}),
    "RetryStepRequest": _object(
        {
            "step": {"type": "string", "description": "default: the one failed step"},
            "actor": {"type": "string", "description": "who asks (recorded in the audit log)"},
        }
    ),
    "RestartRequest": _object(
        {
            "input": {"description": "new input (same forms as start); default: the stored one"},
            "new_id": {"type": "string", "description": "start a copy under this id instead"},
            "actor": _STR,
        }
    ),
    "RerunFromRequest": _object({"step": _STR, "actor": _STR}, ["step"]),
    "AuditEntry": _record(
        {
            "id": _INT,
            "execution_id": _STR,
            "action": {
                "type": "string",
                "enum": ["retry-step", "restart", "rerun-from", "resume", "pause", "paused"],
            },
            "actor": _STR,
            "created_at": _TIME,
            "details": {"type": "object"},
        }
    ),
    "AuditList": _record({"items": _list_of("AuditEntry")}),
    "PauseRule": _record(
        {
            "id": _INT,
            "execution_id": _NULLABLE_STR,
            "durable_name": _NULLABLE_STR,
            "step_pattern": {**_NULLABLE_STR, "description": "glob on step names or templates"},
            "reason": _NULLABLE_STR,
            "actor": _STR,
            "created_at": _TIME,
        }
    ),
    "PauseRuleList": _record({"items": _list_of("PauseRule")}),
    "PauseRequest": _object(
        {
            "execution_id": _STR,
            "durable": _STR,
            "step": {"type": "string", "description": "glob, e.g. 'charge:*'"},
            "reason": _STR,
            "actor": _STR,
        }
    ),
    "ResumeRequest": _object(
        {
            "rule_id": _INT,
            "execution_id": _STR,
            "durable": _STR,
            "step": _STR,
            "all": {"type": "boolean"},
            "actor": _STR,
        }
    ),
    "ResumeResult": _record(
        {"rules": _list_of("PauseRule"), "execution_ids": {"type": "array", "items": _STR}}
    ),
    "ActorRequest": _object({"actor": _STR}),
}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _err(description: str) -> dict[str, Any]:
    return _json(description, "Error")


ID_ENCODING = (
    "The execution id as ONE path segment, percent-encoded (RFC 3986): '/' is %2F, "
    "'%' is %25, a space %20, non-ASCII characters their UTF-8 bytes (é is %C3%A9); "
    "encodeURIComponent(id) in JavaScript, urllib.parse.quote(id, safe='') in Python. "
    "The server routes on the raw path, so every id is reachable, also one ending in "
    "'/steps' or '/cancel'. An id written with a raw '/' (child executions are "
    "'<parent>/<name>') is found too when its last part is not an action name. "
    "1 to 255 characters, no control characters (422 otherwise)."
)
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": ID_ENCODING,
    "examples": {
        "child": {"summary": "p/child-1", "value": "p%2Fchild-1"},
        "odd": {"summary": "50% off/é x", "value": "50%25%20off%2F%C3%A9%20x"},
    },
}
_STEP = {
    "name": "step",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 512},
    "description": "the step name, percent-encoded like the id",
}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    open_: bool = False,
) -> dict[str, Any]:
    """One operation. ``open_``: no token needed (``security: []``)."""
    op: dict[str, Any] = {"summary": summary}
    if open_:
        op["security"] = []
    if parameters is not None:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    return op


_E404 = _err("no execution with this id")
_E409 = _err("the execution's state does not allow it")
_E422 = _err("bad input")
_TIMEOUT = {
    "name": "timeout",
    "in": "query",
    "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 30},
}
_LIST_PARAMETERS = [
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(ALL_STATUSES)}},
    {"name": "name", "in": "query", "schema": {"type": "string"}},
    {**_LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]


def _on_id(
    summary: str,
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation on one execution (path parameter ``{id}``, and ``query`` if given):
    it also answers 404 when there is none, listed after the successes."""
    success = {code: r for code, r in responses.items() if code.startswith("2")}
    errors = {code: r for code, r in responses.items() if not code.startswith("2")}
    parameters = [_ID] if query is None else [_ID, query]
    return _op(summary, {**success, "404": _E404, **errors}, parameters=parameters, body=body)


def _probe_paths() -> dict[str, Any]:
    document = {
        "description": "OpenAPI 3.1",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    ready = {
        "200": _json("ready", "Health"),
        "503": _err(
            "the database did not answer within 1.5 s, or the server is shutting down "
            "(Retry-After); a caller holding the token also gets the database's `detail`"
        ),
    }
    return {
        "/healthz": {
            "get": _op(
                "Liveness (always open, no token)",
                {"200": _json("the process is up", "Health")},
                open_=True,
            )
        },
        "/readyz": {
            "get": _op("Readiness: the database answers (always open, no token)", ready, open_=True)
        },
        "/openapi.json": {"get": _op("This document", {"200": document})},
    }


def _list_paths() -> dict[str, Any]:
    start_responses = {
        "201": _json("created (pending; a worker runs it)", "ExecutionDetail"),
        "200": _json("the id existed: that execution", "ExecutionDetail"),
        "409": _err("the id belongs to another durable function"),
        "422": _err("unknown durable, bad input or bad body"),
    }
    return {
        "/api/durables": {
            "get": _op(
                "Durable function names registered in the server process",
                {"200": _json("names", "Names")},
            )
        },
        "/api/counts": {
            "get": _op("Number of executions by status", {"200": _json("counts", "Counts")})
        },
        "/api/queues": {
            "get": _op(
                "Queues (zart.Queue): depth, running executions and limits",
                {"200": _json("queues", "QueueList")},
            )
        },
        "/api/audit": {
            "get": _op(
                "Audit log of admin operations, newest first",
                {"200": _json("entries", "AuditList"), "422": _E422},
                parameters=[_LIMIT],
            )
        },
        "/api/executions": {
            "get": _op(
                "List executions, newest first",
                {"200": _json("one page", "ExecutionPage"), "422": _E422},
                parameters=_LIST_PARAMETERS,
            ),
            "post": _op(
                "Start an execution of a registered durable function",
                start_responses,
                body=_body("StartRequest"),
            ),
        },
    }


def _execution_paths() -> dict[str, Any]:
    x = "/api/executions/{id}"
    detail = _json("the execution", "ExecutionDetail")
    return {
        x: {"get": _on_id("One execution, with its input and result", {"200": detail})},
        x + "/overview": {
            "get": _on_id(
                "One execution with the size and a preview of its input and result "
                "(what a page refreshing every second should fetch)",
                {"200": _json("the execution", "ExecutionOverview")},
            )
        },
        x + "/input": {
            "get": _on_id("Its stored input, in full", {"200": _json("input", "ExecutionInput")})
        },
        x + "/result": {
            "get": _on_id("Its stored result, in full", {"200": _json("result", "ExecutionResult")})
        },
        x + "/steps": {
            "get": _on_id("Its steps, in call order", {"200": _json("steps", "StepList")})
        },
        x + "/steps/{step}": {
            "get": _on_id(
                "One step in full: output, error with its traceback",
                {"200": _json("the step", "StepDetail")},
                query=_STEP,
            )
        },
        x + "/timeline": {
            "get": _on_id(
                "Every step, column by column (about 40 bytes a step): the web view's timeline",
                {"200": _json("the steps", "Timeline")},
            )
        },
        x + "/wait": {
            "get": _on_id(
                "Wait (at most `timeout` s, max 60) until it finishes; "
                "returns it either way: check `status`",
                {"200": detail, "422": _E422},
                query=_TIMEOUT,
            )
        },
        x + "/audit": {
            "get": _on_id(
                "Audit log of one execution", {"200": _json("entries", "AuditList")}, query=_LIMIT
            )
        },
    }


def _write_paths() -> dict[str, Any]:
    x = "/api/executions/{id}"
    pending = _json("back to pending", "Execution")
    restarted = {
        "200": _json("same id, back to pending", "Execution"),
        "201": _json("the new execution (new_id)", "Execution"),
        "409": _E409,
        "422": _E422,
    }
    return {
        x + "/cancel": {
            "post": _on_id(
                "Cancel (it stops at its next step boundary)",
                {"200": _json("outcome", "CancelResult")},
            )
        },
        x + "/events": {
            "post": _on_id(
                "Deliver an event to a wait_for_event (kept until consumed); "
                "409 when the execution has finished (nothing is stored)",
                {
                    "202": _json("stored", "EventResult"),
                    "409": _err("the execution has finished: nothing can wait for the event"),
                    "422": _E422,
                },
                _body("EventRequest"),
            )
        },
        x + "/retry-step": {
            "post": _on_id(
                "Retry the failed step of a failed execution",
                {"200": pending, "409": _E409},
                _body("RetryStepRequest", required=False),
            )
        },
        x + "/restart": {
            "post": _on_id(
                "Run a finished execution again from the start (same id, "
                "checkpoints cleared; or a copy under new_id)",
                restarted,
                _body("RestartRequest", required=False),
            )
        },
        x + "/rerun-from": {
            "post": _on_id(
                "Re-run a finished execution from a step, keeping earlier checkpoints",
                {"200": pending, "409": _E409, "422": _E422},
                _body("RerunFromRequest"),
            )
        },
    }


def _pause_paths() -> dict[str, Any]:
    """Pause rules, and resuming one execution (cancelled, diverged or paused)."""
    return {
        "/api/pause-rules": {
            "get": _op("The pause rules in force", {"200": _json("rules", "PauseRuleList")}),
            "post": _op(
                "Add a pause rule (or get the one with this scope): matching executions "
                "stop before their next step within about a second",
                {"200": _json("the rule", "PauseRule"), "422": _E422},
                body=_body("PauseRequest"),
            ),
        },
        "/api/pause-rules/resume": {
            "post": _op(
                "Remove pause rules (rule_id, an exact scope, or all): the executions "
                "they held go back to pending",
                {
                    "200": _json("what was removed and released", "ResumeResult"),
                    "404": _err("no pause rule matched"),
                    "422": _E422,
                },
                body=_body("ResumeRequest"),
            )
        },
        "/api/executions/{id}/resume": {
            "post": _on_id(
                "Continue a cancelled, diverged or paused execution where it stopped",
                {"200": _json("back to pending", "Execution"), "409": _E409},
                _body("ActorRequest", required=False),
            )
        },
    }


def _metrics_path() -> dict[str, Any]:
    text = {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "/metrics": {"get": _op("Prometheus metrics (text exposition format 0.0.4)", {"200": text})}
    }


# Answers of the checks every request passes (``zart._ops.api._guard``), and of the
# database gate.
GUARD_RESPONSES = {
    "400": _err("the Host header names no host this server serves (DNS rebinding)"),
    "403": _err("a cross-origin request (Origin / Sec-Fetch-Site) not allowed"),
    "413": _err("the body is larger than the server's limit (--max-body)"),
    "415": _err("not Content-Type: application/json"),
    "503": _err(
        "the database did not answer in time, or the server is shutting down (a long "
        "poll); retry after Retry-After seconds"
    ),
}


def _guard_responses(path: str, method: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    if "security" not in op:
        responses.setdefault("401", _err("missing or wrong bearer token"))
    if path not in ("/healthz", "/readyz"):
        responses.setdefault("400", GUARD_RESPONSES["400"])
    if method == "post":
        for status in ("403", "413", "415"):
            responses.setdefault(status, GUARD_RESPONSES[status])
    if path.startswith("/api/") or path == "/metrics":
        responses.setdefault("503", GUARD_RESPONSES["503"])


def _paths(metrics: bool) -> dict[str, Any]:
    paths = {**_probe_paths(), **_list_paths(), **_execution_paths(), **_write_paths()}
    paths.update(_pause_paths())
    if metrics:
        paths.update(_metrics_path())
    for path, item in paths.items():
        for method, op in item.items():
            _guard_responses(path, method, op)
    # The module-level pieces (_E404, _ID...) are shared: a caller editing the document
    # must not reach them.
    return copy.deepcopy(paths)


def openapi_document(*, metrics: bool = False, token: bool = True) -> dict[str, Any]:
    """The document. 401 responses and the bearer scheme are listed whether or not this
    server has a token (they apply as soon as ``ZART_API_TOKEN`` is set)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zart",
            "version": __version__,
            "description": "Operations API of the zart durable-execution runtime. "
            "Errors are {error, message} JSON. Served by `zart serve`. Execution ids in "
            "paths are percent-encoded, one path segment: " + ID_ENCODING + " "
            "State-changing requests (POST) must be Content-Type: application/json and, "
            "from a browser, same-origin.",
        },
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": _paths(metrics),
    }
