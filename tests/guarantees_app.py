"""Durable flows for tests/runtime/test_guarantees.py and test_semantics.py that need
a real process to die: run as ``python -m guarantees_app FLOW EXECUTION_ID`` with
``ZART_DATABASE_URL`` and ``GUARANTEES_LOG`` (a file each step body appends to) set.

Prints ``RESULT <repr>`` or ``FAILED <type>: <message>`` and exits 0; a step that
kills its own process ends the child with -SIGKILL instead.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import zart
from zart import RetryPolicy, TaskError, durable, step


def _log(line: str) -> int:
    """Append ``line`` to the log; how many times it is there now."""
    path = Path(os.environ["GUARANTEES_LOG"])
    with open(path, "a") as out:
        out.write(line + "\n")
    return path.read_text().splitlines().count(line)


@step("before")
async def before() -> str:
    _log("before")
    return "before"


@step("crash-always", retry=RetryPolicy(max_attempts=3, initial_delay=0.0))
async def crash_always() -> str:
    _log("crash-always")
    os.kill(os.getpid(), signal.SIGKILL)  # the process dies inside every attempt
    return "unreachable"


@durable("g-crash-loop")
async def crash_loop() -> list[str]:
    return [await before(), await crash_always()]


@step("crash-once")
async def crash_once() -> str:
    if _log("crash-once") == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # only the first time
    return "survived"


@durable("g-recover-once", max_recoveries=1)
async def recover_once() -> list[str]:
    return [await before(), await crash_once()]


FLOWS = {"crash-loop": crash_loop, "recover-once": recover_once}


def main() -> None:
    flow, execution_id = sys.argv[1], sys.argv[2]
    app = zart.Zart(lease_seconds=30)
    try:
        print("RESULT", repr(app.run(FLOWS[flow], execution_id=execution_id)), flush=True)
    except TaskError as exc:
        print("FAILED", f"{exc.error_type}: {exc}", flush=True)
    finally:
        app.close()


if __name__ == "__main__":
    main()
