"""The OpenAPI 3.1 document of the HTTP API (served at ``/openapi.json``).

Written by hand next to the routes in ``api.py``; ``tests/test_ops_api.py`` checks
that every route is documented and every documented response matches what the
server really returns.
"""

from __future__ import annotations

import copy
from typing import Any

from zart import __version__
from zart._storage import ALL_STATUSES

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "Execution": {
        "type": "object",
        "required": [
            "id",
            "durable_name",
            "status",
            "attempts",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "wake_at",
            "duration",
            "error",
            "lease_owner",
            "parent_id",
        ],
        "properties": {
            "id": {"type": "string"},
            "durable_name": {"type": "string"},
            "status": {"type": "string", "enum": list(ALL_STATUSES)},
            "attempts": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "wake_at": _NULLABLE_TIME,
            "duration": {"type": ["number", "null"], "description": "seconds"},
            "error": {**_NULLABLE_STR, "description": "'Type: message' of a failure"},
            "lease_owner": _NULLABLE_STR,
            "parent_id": _NULLABLE_STR,
        },
    },
    "ExecutionDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Execution"},
            {
                "type": "object",
                "required": ["input", "result"],
                "properties": {
                    "input": {"description": 'stored input: {"args": [...], "kwargs": {...}}'},
                    "result": {"description": "stored result (JSON), null until completed"},
                },
            },
        ]
    },
    "ExecutionPage": {
        "type": "object",
        "required": ["items", "limit", "offset", "next_offset"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Execution"}},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": {"type": ["integer", "null"]},
        },
    },
    "Step": {
        "type": "object",
        "required": [
            "name",
            "seq",
            "kind",
            "status",
            "attempts",
            "started_at",
            "finished_at",
            "duration",
            "output_preview",
            "error",
        ],
        "properties": {
            "name": {"type": "string"},
            "seq": {"type": "integer"},
            "kind": {"type": "string"},
            "status": {"type": "string"},
            "attempts": {"type": "integer"},
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "duration": {"type": ["number", "null"]},
            "output_preview": _NULLABLE_STR,
            "error": _NULLABLE_STR,
        },
    },
    "StepList": {
        "type": "object",
        "required": ["execution_id", "items"],
        "properties": {
            "execution_id": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
        },
    },
    "StartRequest": {
        "type": "object",
        "required": ["durable"],
        "properties": {
            "durable": {"type": "string", "description": "registered durable name"},
            "input": {
                "description": "array (positional), object (keyword) or single value",
            },
            "id": {"type": "string", "description": "idempotency: an existing id is returned"},
        },
    },
    "CancelResult": {
        "type": "object",
        "required": ["id", "cancelled", "status"],
        "properties": {
            "id": {"type": "string"},
            "cancelled": {"type": "boolean"},
            "status": {"type": "string", "enum": list(ALL_STATUSES)},
        },
    },
    "EventRequest": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "payload": {}},
    },
    "EventResult": {
        "type": "object",
        "required": ["id", "name", "delivered"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "delivered": {"type": "boolean"},
        },
    },
    "Counts": {
        "type": "object",
        "required": ["counts", "total"],
        "properties": {
            "counts": {
                "type": "object",
                "required": list(ALL_STATUSES),
                "properties": {st: {"type": "integer"} for st in ALL_STATUSES},
            },
            "total": {"type": "integer"},
        },
    },
    "Names": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"type": "string"}}},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    },
    "RetryStepRequest": {
        "type": "object",
        "properties": {
            "step": {"type": "string", "description": "default: the one failed step"},
            "actor": {"type": "string", "description": "who asks (recorded in the audit log)"},
        },
    },
    "RestartRequest": {
        "type": "object",
        "properties": {
            "input": {"description": "new input (same forms as start); default: the stored one"},
            "new_id": {"type": "string", "description": "start a copy under this id instead"},
            "actor": {"type": "string"},
        },
    },
    "RerunFromRequest": {
        "type": "object",
        "required": ["step"],
        "properties": {"step": {"type": "string"}, "actor": {"type": "string"}},
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "execution_id", "action", "actor", "created_at", "details"],
        "properties": {
            "id": {"type": "integer"},
            "execution_id": {"type": "string"},
            "action": {"type": "string", "enum": ["retry-step", "restart", "rerun-from"]},
            "actor": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "details": {"type": "object"},
        },
    },
    "AuditList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _err(description: str) -> dict[str, Any]:
    return _json(description, "Error")


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "execution id (may contain '/': child executions are '<parent>/<name>')",
}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


def _paths(metrics: bool) -> dict[str, Any]:
    e404 = _err("no execution with this id")
    e409 = _err("the execution's state does not allow it")
    e422 = _err("bad input")
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "Liveness (always open, no token)",
                "security": [],
                "responses": {"200": _json("the process is up", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the database answers (always open, no token)",
                "security": [],
                "responses": {
                    "200": _json("ready", "Health"),
                    "503": _err("the database is unreachable"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/durables": {
            "get": {
                "summary": "Durable function names registered in the server process",
                "responses": {"200": _json("names", "Names")},
            }
        },
        "/api/counts": {
            "get": {
                "summary": "Number of executions by status",
                "responses": {"200": _json("counts", "Counts")},
            }
        },
        "/api/audit": {
            "get": {
                "summary": "Audit log of admin operations, newest first",
                "parameters": [_LIMIT],
                "responses": {"200": _json("entries", "AuditList"), "422": e422},
            }
        },
        "/api/executions": {
            "get": {
                "summary": "List executions, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(ALL_STATUSES)},
                    },
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                    {**_LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {"200": _json("one page", "ExecutionPage"), "422": e422},
            },
            "post": {
                "summary": "Start an execution of a registered durable function",
                "requestBody": _body("StartRequest"),
                "responses": {
                    "201": _json("created (pending; a worker runs it)", "ExecutionDetail"),
                    "200": _json("the id existed: that execution", "ExecutionDetail"),
                    "409": _err("the id belongs to another durable function"),
                    "422": _err("unknown durable, bad input or bad body"),
                },
            },
        },
        "/api/executions/{id}": {
            "get": {
                "summary": "One execution, with its input and result",
                "parameters": [_ID],
                "responses": {"200": _json("the execution", "ExecutionDetail"), "404": e404},
            }
        },
        "/api/executions/{id}/steps": {
            "get": {
                "summary": "Its steps, in call order",
                "parameters": [_ID],
                "responses": {"200": _json("steps", "StepList"), "404": e404},
            }
        },
        "/api/executions/{id}/wait": {
            "get": {
                "summary": "Wait (at most `timeout` s, max 60) until it finishes; "
                "returns it either way: check `status`",
                "parameters": [
                    _ID,
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 30},
                    },
                ],
                "responses": {
                    "200": _json("the execution", "ExecutionDetail"),
                    "404": e404,
                    "422": e422,
                },
            }
        },
        "/api/executions/{id}/audit": {
            "get": {
                "summary": "Audit log of one execution",
                "parameters": [_ID, _LIMIT],
                "responses": {"200": _json("entries", "AuditList"), "404": e404},
            }
        },
        "/api/executions/{id}/cancel": {
            "post": {
                "summary": "Cancel (it stops at its next step boundary)",
                "parameters": [_ID],
                "responses": {"200": _json("outcome", "CancelResult"), "404": e404},
            }
        },
        "/api/executions/{id}/events": {
            "post": {
                "summary": "Deliver an event to a wait_for_event (kept until consumed)",
                "parameters": [_ID],
                "requestBody": _body("EventRequest"),
                "responses": {
                    "202": _json("stored", "EventResult"),
                    "404": e404,
                    "422": e422,
                },
            }
        },
        "/api/executions/{id}/retry-step": {
            "post": {
                "summary": "Retry the failed step of a failed execution",
                "parameters": [_ID],
                "requestBody": _body("RetryStepRequest", required=False),
                "responses": {
                    "200": _json("back to pending", "Execution"),
                    "404": e404,
                    "409": e409,
                },
            }
        },
        "/api/executions/{id}/restart": {
            "post": {
                "summary": "Run a finished execution again from the start (same id, "
                "checkpoints cleared; or a copy under new_id)",
                "parameters": [_ID],
                "requestBody": _body("RestartRequest", required=False),
                "responses": {
                    "200": _json("same id, back to pending", "Execution"),
                    "201": _json("the new execution (new_id)", "Execution"),
                    "404": e404,
                    "409": e409,
                    "422": e422,
                },
            }
        },
        "/api/executions/{id}/rerun-from": {
            "post": {
                "summary": "Re-run a finished execution from a step, keeping earlier checkpoints",
                "parameters": [_ID],
                "requestBody": _body("RerunFromRequest"),
                "responses": {
                    "200": _json("back to pending", "Execution"),
                    "404": e404,
                    "409": e409,
                    "422": e422,
                },
            }
        },
    }
    if metrics:
        paths["/metrics"] = {
            "get": {
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        }
    for item in paths.values():
        for op in item.values():
            if "security" not in op:
                op["responses"].setdefault("401", _err("missing or wrong bearer token"))
    return paths


def openapi_document(*, metrics: bool = False, token: bool = True) -> dict[str, Any]:
    """The document. 401 responses and the bearer scheme are listed whether or not this
    server has a token (they apply as soon as ``ZART_API_TOKEN`` is set)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zart",
            "version": __version__,
            "description": "Operations API of the zart durable-execution runtime. "
            "Errors are {error, message} JSON. Served by `zart serve`.",
        },
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": _paths(metrics),
    }
