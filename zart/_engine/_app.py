"""``Zart``: the engine object users create, and the handles it returns.

A small facade: configure, start / run / submit, handles, lookups, workers and the
admin operations. The work itself is done by :class:`~zart._engine._runner.Runner`
(claim, replay, run, checkpoint, finish) on the storage layer's stores.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from zart._engine import _admin as admin
from zart._engine import _history as history
from zart._engine import _pausing as pausing
from zart._engine._info import ExecutionStatus, StepInfo
from zart._engine._retention import DEFAULT_STATUSES, GcReport, RetentionThread, collect
from zart._engine._runner import Runner, stored_outcome
from zart._engine._schedules import Schedule, SchedulerThread, define_schedule, remove_schedule
from zart._engine._worker import Worker
from zart._errors import (
    ExecutionCancelledError,
    ExecutionConflictError,
    ExecutionNotFoundError,
    SerializationError,
    UsageError,
    ZartError,
)
from zart._execution._context import current_execution, current_step
from zart._execution._durable import DurableFunction, code_version, lookup
from zart._execution._identifiers import check_event_name, check_execution_id
from zart._execution._queue import Queue, submit_options
from zart._execution._tracing import Tracing
from zart._store import (
    TERMINAL_STATUSES,
    Database,
    ExecutionRecord,
    JournalStore,
    NotFound,
    OpsStore,
    open_database,
)

if TYPE_CHECKING:
    from zart._engine._admin import AuditEntry
    from zart._engine._pausing import PauseRule, ResumeResult

R = TypeVar("R")
log = logging.getLogger("zart")

DEFAULT_DATABASE_URL = "sqlite:///zart.db"


class ExecutionHandle(Generic[R]):
    """A started or submitted execution. ``await handle.result()`` waits for it, wherever
    it runs, and is typed by the durable function's return annotation. A handle only
    waits: ``start`` runs the execution in this process, a ``submit``-ted one is run
    by a worker (or a later ``run``/``start`` of its id).

    ``created`` says whether the call that returned this handle created the execution
    (False: it attached to one that existed under the same id).
    """

    def __init__(
        self,
        app: Zart,
        durable: DurableFunction[Any, R],
        execution_id: str,
        *,
        created: bool = False,
    ) -> None:
        self.app = app
        self.durable = durable
        self.execution_id = execution_id
        self.created = created
        self._task: asyncio.Task[R] | None = None

    async def result(self, timeout: float | None = None) -> R:
        """The execution's result, once it has finished (here or in any other process).

        Raises TaskError if it failed (ExecutionCancelledError if it was cancelled).
        """
        if timeout is None:
            return await self._result()
        return await asyncio.wait_for(self._result(), timeout)

    async def _result(self) -> R:
        if self._task is not None:
            # start() drives it in this task; a timeout here must not interrupt that.
            return await asyncio.shield(self._task)
        # A handle from submit() or handle() only waits: running the execution is the
        # job of run, start and workers, so a waiter's timeout never interrupts one.
        result: R = await self.app._runner.wait_until_done(self.durable, self.execution_id)
        return result

    def status(self) -> ExecutionStatus:
        return self.app.status(self.execution_id)

    def __repr__(self) -> str:
        return f"<ExecutionHandle {self.execution_id!r} ({self.durable.name})>"


class Zart:
    """The durable-execution engine, bound to one database.

    ``database_url`` defaults to ``$ZART_DATABASE_URL``, else ``sqlite:///zart.db``.
    The URL (and an SQLite file: that it is a database zart may write, with no tables
    zart does not recognise) is checked here; nothing connects until first use, so
    creating one at import time is cheap.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        strict: bool = False,
        lease_seconds: float = 30.0,
        tracing: Any = False,
        version: str | None = None,
    ) -> None:
        self.database_url = (
            database_url or os.environ.get("ZART_DATABASE_URL") or DEFAULT_DATABASE_URL
        )
        self.strict = strict
        # The code version recorded on executions; default: a hash of the registered
        # durables' source (docs/safe-deploys.md).
        self.version = version
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.lease_seconds = lease_seconds
        # OpenTelemetry spans: True (global provider) or a TracerProvider; off when falsy.
        self._tracing = Tracing(None if tracing is True else tracing) if tracing else None
        self._db: Database | None = None
        self._stores: tuple[JournalStore, OpsStore, Runner] | None = None
        self._open_lock = threading.Lock()
        # The URL, the file and what it holds are checked now (a clear error at the
        # construction site); nothing connects until the first use.
        self._open()

    # ------------------------------------------------------------------ plumbing

    def _open(self) -> tuple[JournalStore, OpsStore, Runner]:
        if self._stores is None:
            with self._open_lock:
                if self._stores is None:
                    self._db = open_database(self.database_url)
                    journal = JournalStore(self._db, self.version or code_version)
                    runner = Runner(
                        journal,
                        lease_seconds=self.lease_seconds,
                        strict=self.strict,
                        tracing=self._tracing,
                    )
                    self._stores = (journal, OpsStore(self._db), runner)
        return self._stores

    @property
    def _journal(self) -> JournalStore:
        return self._open()[0]

    @property
    def _runner(self) -> Runner:
        return self._open()[2]

    @property
    def ops_store(self) -> OpsStore:
        """The operations queries (listing, counts, health, audit, metrics, schedules) that
        zart's CLI, HTTP API and web view are built on. For tools built on zart; its
        methods may change between releases, unlike the rest of this class."""
        return self._open()[1]

    def close(self) -> None:
        """Stop the lease heartbeat and close database connections."""
        if self._stores is not None:
            self._stores[2].heartbeat.stop()
        if self._db is not None:
            self._db.close()
        self._db = None
        self._stores = None

    def __enter__(self) -> Zart:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _resolve(fn: DurableFunction[Any, R] | str) -> DurableFunction[Any, R]:
        if isinstance(fn, DurableFunction):
            return fn
        if isinstance(fn, str):
            found: DurableFunction[Any, R] = lookup(fn)
            return found
        raise TypeError(f"expected a @durable function or its name, got {fn!r}")

    # ------------------------------------------------------------------ starting

    def submit(
        self,
        fn: DurableFunction[Any, R] | str,
        /,
        *args: Any,
        execution_id: str | None = None,
        queue: Queue | str | None = None,
        priority: int | None = None,
        partition: str | None = None,
        delay: float | timedelta | None = None,
        dedup_key: str | None = None,
        dedup_ttl: float | timedelta | None = None,
        debounce: tuple[str, float | timedelta] | None = None,
        **kwargs: Any,
    ) -> ExecutionHandle[R]:
        """Create an execution (or attach to the one with this id) without running it.

        A worker (``app.worker()`` / ``zart worker``), or a later ``run`` / ``start`` on
        the same id, runs it. Submitting an id that exists never runs it twice and never
        replaces its input; an id that belongs to another durable function raises
        :class:`ExecutionConflictError`. ``handle.created`` tells which case it was.
        Usable from plain and async code alike (it does not wait).

        Flow control (docs/flow-control.md; these names are reserved, like
        ``execution_id``: they are never passed to the durable function):
        ``queue`` (a :class:`zart.Queue` or its name: its limits apply to the claims of
        every worker), ``priority`` (higher first, queues with ``priority=True``),
        ``partition`` (the key the limits apply to, queues with ``partition_key=True``),
        ``delay`` (seconds or timedelta: not started before), ``dedup_key`` (while an
        execution of this durable with the key is open, and ``dedup_ttl`` seconds after
        it finished, a submit returns it: ``created`` False), ``debounce=(key, window)``
        (a submit with the key replaces the input of the one not started yet and pushes
        its start to ``window`` seconds from now: only the last input runs).
        """
        durable = self._resolve(fn)
        q, options = submit_options(
            queue=queue, priority=priority, partition=partition, delay=delay,
            dedup_key=dedup_key, dedup_ttl=dedup_ttl, debounce=debounce,
        )  # fmt: skip
        if options is not None and options.debounce_key is not None and execution_id:
            raise UsageError("debounce= picks the execution itself: no execution_id= with it")
        if q is not None:
            self._journal.define_queue(q.limits, replace=True)
        eid, created = self._runner.create(durable, args, kwargs, execution_id, options=options)
        return ExecutionHandle(self, durable, eid, created=created)

    def run(
        self,
        fn: DurableFunction[Any, R] | str,
        /,
        *args: Any,
        execution_id: str | None = None,
        **kwargs: Any,
    ) -> R:
        """Start (or resume, or look up) an execution and wait for its result.

        With an ``execution_id`` that exists already, nothing runs twice: a
        completed execution returns its stored result, a failed one raises its
        stored error, and an incomplete one is resumed from its last checkpoint
        (with its stored input) once its previous owner is gone.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ZartError(
                "Zart.run() blocks, so it cannot be called from a running event loop; "
                "use `handle = await app.start(...)` and `await handle.result()`"
            )
        return asyncio.run(self._run(fn, args, kwargs, execution_id))

    async def _run(
        self,
        fn: DurableFunction[Any, R] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        execution_id: str | None,
    ) -> R:
        handle = await self.start(fn, *args, execution_id=execution_id, **kwargs)
        return await handle.result()

    async def start(
        self,
        fn: DurableFunction[Any, R] | str,
        /,
        *args: Any,
        execution_id: str | None = None,
        **kwargs: Any,
    ) -> ExecutionHandle[R]:
        """Start (or attach to) an execution in the background of the running loop.

        A new execution is created already claimed by this process (one statement,
        shared with the writes of what runs beside it) and runs at once."""
        durable = self._resolve(fn)
        claimed = await self._runner.create_claimed(durable, args, kwargs, execution_id)
        if claimed is not None:
            rec, token = claimed
            self._runner.hold()
            new: ExecutionHandle[R] = ExecutionHandle(self, durable, rec.id, created=True)
            new._task = asyncio.ensure_future(self._runner.run_claimed(durable, rec, token))
            return new
        handle = self.submit(fn, *args, execution_id=execution_id, **kwargs)
        handle._task = asyncio.ensure_future(
            self._runner.drive_until_done(handle.durable, handle.execution_id)
        )
        return handle

    def handle(self, execution_id: str) -> ExecutionHandle[Any]:
        """A handle on an existing execution (its durable function must be imported)."""
        rec = self._get(execution_id)
        return ExecutionHandle(self, self._resolve(rec.durable_name), execution_id)

    # ------------------------------------------------------------------ inspecting

    def _get(self, execution_id: str) -> ExecutionRecord:
        rec = self._journal.get_execution(check_execution_id(execution_id))
        if rec is None:
            raise self._not_found(execution_id)
        return rec

    def _not_found(self, execution_id: str) -> ExecutionNotFoundError:
        where = self._db.url if self._db is not None else self.database_url
        return ExecutionNotFoundError(f"no execution with id {execution_id!r} in {where}")

    def status(self, execution_id: str) -> ExecutionStatus:
        """Status, times, attempts and error of one execution."""
        return ExecutionStatus.from_record(self._get(execution_id))

    def steps(self, execution_id: str) -> list[StepInfo]:
        """The step history of one execution, in call order."""
        self._get(execution_id)
        records = self._journal.load_steps(execution_id).values()
        return [
            StepInfo.from_record(r) for r in sorted(records, key=lambda r: (r.seq, r.step_name))
        ]

    def list(
        self,
        status: str | None = None,
        durable_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ExecutionStatus]:
        """Executions, newest first."""
        records = self.ops_store.list_executions(status, durable_name, limit, offset)
        return [ExecutionStatus.from_record(r) for r in records]

    def result(self, execution_id: str) -> Any:
        """The stored result of a finished execution (raises TaskError if it failed)."""
        rec = self._get(execution_id)
        if rec.status not in TERMINAL_STATUSES:
            raise ZartError(f"execution {execution_id!r} has not finished (status {rec.status})")
        return stored_outcome(self._resolve(rec.durable_name), rec)

    def cancel(self, execution_id: str) -> bool:
        """Cancel an execution. True if it was cancelled now, False if it had already finished."""
        rec, changed = self._journal.cancel(check_execution_id(execution_id))
        if rec is None:
            raise self._not_found(execution_id)
        if changed:
            stopped = ExecutionCancelledError("execution was cancelled", execution_id=rec.id)
            self._runner.heartbeat.stop_execution(rec.id, stopped)
        return changed

    def send_event(self, execution_id: str, name: str, payload: Any = None) -> None:
        """Deliver event ``name`` to an execution.

        The event is kept until the execution's ``wait_for_event(name)`` takes it,
        so sending before the wait is reached loses nothing. An execution that has
        finished (completed, failed, cancelled) refuses it: ExecutionConflictError.
        From a durable function, send it in a step: a send in the body itself would be
        repeated on every replay, so it raises UsageError.
        """
        if current_execution.get() is not None and current_step.get() is None:
            raise UsageError(
                f"send_event({execution_id!r}, {name!r}) was called in a durable body, where "
                "it would be sent again on every replay. Send it from a step (its result is "
                "journaled, so a completed send is not repeated)"
            )
        check_execution_id(execution_id)
        check_event_name(name)
        try:
            text = json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"event {name!r} payload of type {type(payload).__name__} "
                f"is not JSON-serializable: {exc}"
            ) from None
        try:
            rec = self._journal.add_event(execution_id, name, text)
        except NotFound:
            raise self._not_found(execution_id) from None
        if rec.status in TERMINAL_STATUSES:
            raise ExecutionConflictError(
                f"event {name!r} was not delivered: execution {execution_id!r} is already "
                f"{rec.status}, so nothing can wait for it any more"
            )

    # ------------------------------------------------------------------ workers

    def worker(
        self,
        *,
        concurrency: int = 8,
        durable_names: Sequence[str] | None = None,
        poll_interval: float = 0.5,
        grace_seconds: float = 10.0,
        startup_timeout: float = 60.0,
        only_version: str | None = None,
        listen_poll_interval: float = 10.0,
        retention: str | float | timedelta | None = None,
        retention_interval: float = 60.0,
        scheduler: bool = False,
    ) -> Worker:
        """A worker that claims and runs every runnable execution of the registered durables
        (or of ``durable_names``), ``concurrency`` at a time. ``worker.run()`` blocks until
        SIGTERM/SIGINT; ``await worker.run_async()`` runs inside an event loop.
        ``only_version`` serves only executions created by that code version (pinning,
        for those who keep old workers running); the default resumes any version, with
        the divergence check as the guard. An idle worker is woken by new work;
        ``poll_interval`` is how often it looks anyway without a push channel (SQLite
        across processes), ``listen_poll_interval`` with one (PostgreSQL's LISTEN).
        ``retention`` (e.g. ``"30d"``) deletes, in the background every
        ``retention_interval`` seconds, a bounded batch of the executions that finished
        longer ago (see :meth:`gc`); ``scheduler`` also starts due schedule occurrences
        (see :meth:`schedule`)."""
        worker = Worker(
            self._runner,
            concurrency=concurrency,
            durable_names=builtins.list(durable_names) if durable_names is not None else None,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            startup_timeout=startup_timeout,
            only_version=only_version,
            listen_poll_interval=listen_poll_interval,
        )
        if retention is not None:
            worker.services.append(
                RetentionThread(self.ops_store.db, retention, retention_interval)
            )
        if scheduler:
            worker.services.append(SchedulerThread(self.ops_store))
        return worker

    # ------------------------------------------------------------------ retention, schedules

    def gc(
        self,
        older_than: str | float | timedelta,
        statuses: Iterable[str] = DEFAULT_STATUSES,
        durable: str | None = None,
        dry_run: bool = False,
    ) -> GcReport:
        """Delete the executions that finished (in ``statuses``: completed, failed,
        cancelled) more than ``older_than`` ago (``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``,
        seconds or a timedelta), of durable ``durable`` or all, with their steps, events,
        child executions and audit rows. Open executions are never touched, and a tree is
        deleted whole once its root is old enough and every member has finished. Runs in
        short batches (one transaction each); ``dry_run`` deletes nothing and reports the
        same counts."""
        return collect(self.ops_store.db, older_than, statuses, durable, dry_run=dry_run)

    def schedule(
        self,
        name: str,
        fn: DurableFunction[Any, Any] | str,
        /,
        *args: Any,
        cron: str | None = None,
        every: float | timedelta | None = None,
        timezone: str = "UTC",
        overlap: str = "skip",
        backfill: int = 0,
        **kwargs: Any,
    ) -> Schedule:
        """Run ``fn(*args, **kwargs)`` on a schedule: ``cron`` (5 fields, or 6 with
        seconds first, evaluated in ``timezone``) or ``every`` (seconds or a timedelta).
        Defining the same schedule again (from any process) changes nothing; a changed
        definition replaces it. ``overlap`` when the previous occurrence is still active:
        ``"skip"`` it, ``"allow"`` it, or ``"buffer_one"`` (keep one, started after).
        ``backfill=N``: after the scheduler was down, each missed occurrence runs, oldest
        first, N at most (the rest are dropped); by default (0) they collapse into one
        late run.
        Occurrences are started by a worker with ``scheduler=True`` (``zart worker
        --scheduler``, ``zart serve``) as executions ``"<name>@<UTC time>"``."""
        found, _ = define_schedule(
            self.ops_store, name, self._resolve(fn), args, kwargs,
            cron=cron, every=every, tz=timezone, overlap=overlap, backfill=backfill,
        )  # fmt: skip
        return found

    def unschedule(self, name: str) -> bool:
        """Delete schedule ``name`` (its past executions stay); False if there was none."""
        return remove_schedule(self.ops_store, name)

    # ------------------------------------------------------------------ operations

    def retry_step(
        self, execution_id: str, step_name: str | None = None, *, actor: str | None = None
    ) -> ExecutionStatus:
        """Retry the failed step of a failed execution: its failed checkpoint is removed and
        the execution goes back to pending, so a worker (or ``run``) resumes it at that step.
        ``actor`` (default: the OS user) is recorded in the audit log."""
        return admin.retry_step(self.ops_store, execution_id, step_name, actor=actor)

    def restart(
        self,
        execution_id: str,
        *args: Any,
        new_id: str | None = None,
        actor: str | None = None,
        **kwargs: Any,
    ) -> ExecutionStatus:
        """Run a finished execution again from the start. With no arguments it keeps its
        input; given arguments replace it. Same id (checkpoints cleared) unless ``new_id``."""
        given = bool(args or kwargs)
        return admin.restart(
            self.ops_store,
            self._journal,
            execution_id,
            args=args if given else None,
            kwargs=kwargs if given else None,
            new_id=new_id,
            actor=actor,
        )

    def resume(self, execution_id: str, *, actor: str | None = None) -> ExecutionStatus:
        """Continue a cancelled or diverged execution at its first unfinished step (its
        checkpoints are kept; cancelled children resume with it). A worker, or ``run``
        on its id, runs it. ``actor`` (default: the OS user) is recorded in the audit log.

        A paused execution is resumed too: the pause rules naming only it are removed
        and it goes back to pending (a wider rule that still matches holds it again)."""
        resumed = pausing.resume_paused(self._runner.pauses, execution_id, actor)
        if resumed is not None:
            return resumed
        return admin.resume(self.ops_store, execution_id, actor=actor)

    # ------------------------------------------------------------------ pause rules

    def pause(
        self,
        *,
        execution_id: str | None = None,
        durable: DurableFunction[Any, Any] | str | None = None,
        step: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> PauseRule:
        """Add a pause rule: every execution it matches finishes its current step and
        stops before its next new one, as ``paused`` (within about a second, in every
        process). Scope: ``execution_id``, ``durable`` and/or ``step`` (a glob on the
        rendered step name or on the step's template, e.g. ``"charge:*"``); every part
        given must match. A rule with the same scope is returned as it is."""
        name = durable.name if isinstance(durable, DurableFunction) else durable
        rule, _ = pausing.pause(
            self._runner.pauses, execution_id=execution_id, durable_name=name, step=step,
            reason=reason, actor=actor,
        )  # fmt: skip
        return rule

    def pause_rules(self) -> builtins.list[PauseRule]:
        """The pause rules in force, oldest first."""
        return pausing.rules(self._runner.pauses)

    def resume_rule(
        self,
        rule_id: int | None = None,
        *,
        execution_id: str | None = None,
        durable: DurableFunction[Any, Any] | str | None = None,
        step: str | None = None,
        everything: bool = False,
        actor: str | None = None,
    ) -> ResumeResult:
        """Remove a pause rule (by id, by its exact scope, or all with ``everything``):
        the executions it held go back to pending and continue where they stopped (one
        that another rule still matches pauses again there)."""
        name = durable.name if isinstance(durable, DurableFunction) else durable
        return pausing.resume_rules(
            self._runner.pauses, None if rule_id is None else [rule_id],
            execution_id=execution_id, durable_name=name, step=step, everything=everything,
            actor=actor,
        )  # fmt: skip

    # ------------------------------------------------------------------ safe deploys

    def export(self, execution_id: str) -> dict[str, Any]:
        """The execution's history (record, input, steps and their results) as a
        versioned JSON document, for :meth:`replay_check` (e.g. golden files in CI)."""
        found = history.load_history(self._journal, execution_id)
        if found is None:
            raise self._not_found(execution_id)
        return found

    def replay_check(
        self,
        source: str | dict[str, Any],
        durable: DurableFunction[Any, Any] | str | None = None,
    ) -> history.ReplayReport:
        """Replay an execution (its id: its journal in this database) or an exported
        history against the code now importable, running no step body, timer, event
        wait or child: compatible, or diverged with the first divergence."""
        doc = self.export(source) if isinstance(source, str) else source
        fn = self._resolve(durable) if durable is not None else None
        return history.replay_history(fn, doc)

    def patches_in_use(self) -> builtins.list[history.PatchUse]:
        """The ``zart.patched`` markers recorded by open executions, with which of them
        took the old and the new branch (an old branch still used must stay)."""
        return history.patches_in_use(self.ops_store)

    def rerun_from(
        self, execution_id: str, step_name: str, *, actor: str | None = None
    ) -> ExecutionStatus:
        """Re-run a finished execution from ``step_name`` on, keeping the checkpoints before it."""
        return admin.rerun_from(self.ops_store, execution_id, step_name, actor=actor)

    def audit_log(
        self, execution_id: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """Who retried, restarted or re-ran what, and when; newest first."""
        return admin.audit_log(self.ops_store, execution_id, limit)
