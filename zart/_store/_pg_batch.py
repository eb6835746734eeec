"""PostgreSQL: a group commit's statements of one kind as one set-based statement.

Sent one by one, even pipelined, each statement of a batch costs PostgreSQL and
psycopg ~150 µs; 500 checkpoints as one ``INSERT ... SELECT FROM unnest(...)`` cost
a few µs each. Each set form keeps its single statement's meaning row by row (the
same lease condition and row lock per execution) and says which rows it wrote with
``RETURNING``, so every caller still gets its own row count: a stale writer gets 0
while its batch-mates are written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zart._store._queries import FINISH_SQL, LEASE_HELD_SQL

Params = dict[str, Any]
Key = Callable[[Params], Any]


class SetForm:
    """One statement for many parameter sets of a single-row statement.

    ``columns`` (name, PostgreSQL array type) are passed as one array each, in the
    order of the ``v`` alias in ``sql``; the rows it returns are matched to the
    parameter sets by ``key`` (applied to a parameter set and to a returned row
    turned into a dict of ``returning`` names)."""

    def __init__(
        self, sql: str, columns: list[tuple[str, str]], returning: list[str], key: Key
    ) -> None:
        arrays = ", ".join(f"%({name})s::{kind}[]" for name, kind in columns)
        names = ", ".join(name for name, _ in columns)
        self.sql = sql.format(values=f"unnest({arrays}) AS v({names})")
        self.columns = [name for name, _ in columns]
        self.returning = returning
        self.key = key

    def run(self, raw: Any, batch: list[Params]) -> Any:
        """Send the statement (in the caller's pipeline); returns its cursor."""
        # Rows in execution-id order: row locks are taken in one order by every batch.
        ordered = sorted(batch, key=_execution_of)
        arrays = {name: [p[name] for p in ordered] for name in self.columns}
        return raw.execute(self.sql, arrays)

    def counts(self, cursor: Any, batch: list[Params]) -> list[int]:
        written = {self.key(dict(zip(self.returning, row, strict=True))) for row in cursor}
        return [1 if self.key(p) in written else 0 for p in batch]


def _execution_of(params: Params) -> str:
    return str(params.get("execution_id", params.get("id")))


_STEP_COLUMNS = [
    ("execution_id", "varchar"), ("step_name", "varchar"), ("seq", "int"),
    ("kind", "varchar"), ("status", "varchar"), ("fingerprint", "varchar"),
    ("output", "text"), ("error", "text"), ("attempts", "int"),
    ("started_at", "float8"), ("finished_at", "float8"), ("token", "varchar"),
]  # fmt: skip

CHECKPOINTS = """
    INSERT INTO zart_steps (execution_id, step_name, seq, kind, status, fingerprint,
                            output, error, attempts, started_at, finished_at)
    SELECT v.execution_id, v.step_name, v.seq, v.kind, v.status, v.fingerprint,
           v.output, v.error, v.attempts, v.started_at, v.finished_at
    FROM {values}
    WHERE EXISTS (SELECT 1 FROM zart_executions e
                  WHERE e.id = v.execution_id AND e.lease_owner = v.token
                    AND e.status = 'running'
                  FOR SHARE)
    ON CONFLICT (execution_id, step_name) DO UPDATE SET
        seq = excluded.seq, kind = excluded.kind, status = excluded.status,
        fingerprint = excluded.fingerprint, output = excluded.output,
        error = excluded.error, attempts = excluded.attempts,
        started_at = excluded.started_at, finished_at = excluded.finished_at
    RETURNING execution_id, step_name
"""

CREATES = """
    INSERT INTO zart_executions (id, durable_name, status, input, attempts, recoveries,
                                 lease_owner, lease_expires_at, created_at, updated_at,
                                 started_at, version, ran_versions)
    SELECT v.id, v.durable_name, 'running', v.input, 1, 0, v.token, {{now}} + v.lease,
           v.now, v.now, v.now, v.version, v.ran_versions
    FROM {values}
    ON CONFLICT (id) DO NOTHING
    RETURNING id
"""

FINISHES = """
    UPDATE zart_executions AS e SET status = v.status, result = v.result,
        error = v.error, lease_owner = NULL, lease_expires_at = NULL,
        finished_at = v.now, updated_at = v.now
    FROM {values}
    WHERE e.id = v.id AND e.lease_owner = v.token AND e.status = 'running'
    RETURNING e.id
"""

LEASE_CHECKS = """
    SELECT e.id FROM zart_executions AS e JOIN {values}
        ON e.id = v.execution_id AND e.lease_owner = v.token
    WHERE e.status = 'running'
"""


def set_forms(checkpoint_sql: str, create_claimed_sql: str, now_sql: str) -> dict[str, SetForm]:
    """The set form of each batched single-row statement, by that statement's text."""
    by_id: Key = lambda p: p.get("id", p.get("execution_id"))  # noqa: E731
    creates = SetForm(
        CREATES,
        [
            ("id", "varchar"), ("durable_name", "varchar"), ("input", "text"),
            ("token", "varchar"), ("lease", "float8"), ("now", "float8"),
            ("version", "varchar"), ("ran_versions", "text"),
        ],
        ["id"],
        by_id,
    )  # fmt: skip
    creates.sql = creates.sql.replace("{now}", now_sql)
    return {
        checkpoint_sql: SetForm(
            CHECKPOINTS,
            _STEP_COLUMNS,
            ["execution_id", "step_name"],
            lambda p: (p["execution_id"], p["step_name"]),
        ),
        create_claimed_sql: creates,
        FINISH_SQL: SetForm(
            FINISHES,
            [
                ("id", "varchar"),
                ("token", "varchar"),
                ("status", "varchar"),
                ("result", "text"),
                ("error", "text"),
                ("now", "float8"),
            ],
            ["id"],
            by_id,
        ),
        LEASE_HELD_SQL: SetForm(
            LEASE_CHECKS, [("execution_id", "varchar"), ("token", "varchar")], ["id"], by_id
        ),
    }
