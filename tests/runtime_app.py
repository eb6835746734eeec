"""Helpers shared by the runtime tests, importable by the child processes they start.

``SimulatedCrash`` stands in for a process dying in the middle of a durable body:
it is a BaseException, so zart hands the execution back (status pending) instead
of recording a failure, and the next ``run`` with the same id resumes it.

Run as ``python -c "import runtime_app; runtime_app.child_main()" ID`` (with
``ZART_DATABASE_URL`` set) to run ``retry_crash_flow`` in a child process.
"""

import sys

import zart
from zart import RetryPolicy, durable, step


class SimulatedCrash(BaseException):
    """Raised by a test body to stop mid-execution without failing it."""


# Calls of the step body in this process (the child's calls are not seen here).
FLAKY_CALLS: list[int] = []
# In a child process the step always fails; the test process may flip this.
FLAKY_SUCCEEDS = False


@step(
    "rt-crash-flaky",
    # Long backoff: the child is killed while it sleeps between attempts 1 and 2.
    retry=RetryPolicy(max_attempts=2, initial_delay=60.0, jitter=False),
)
async def crash_flaky() -> str:
    FLAKY_CALLS.append(1)
    if FLAKY_SUCCEEDS:
        return "ok"
    raise ValueError("flaky failure")


@durable("rt-crash-retry")
async def retry_crash_flow() -> str:
    return await crash_flaky()


def child_main() -> None:
    app = zart.Zart()
    app.run(retry_crash_flow, execution_id=sys.argv[1])
