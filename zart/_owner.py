"""Who holds a lease, and whether that process is still alive.

A lease owner token is ``host|pid|process-start-ticks|nonce``. The nonce makes
every claim unique, so the token doubles as a fencing token. Host, pid and
start time let a process on the same machine tell at once that the owner is
gone (crash, ``kill -9``) instead of waiting for the lease to expire; the start
time guards against a recycled pid.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from functools import lru_cache


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start ticks) of a process from /proc, or None when unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    # Field 3 is the state, field 22 (starttime) is the 20th after the command name.
    return fields[0].decode(), fields[19].decode()


def _process_start_ticks(pid: int) -> str:
    stat = _proc_stat(pid)
    return stat[1] if stat else "?"


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname().replace("|", "_")


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str

    def new_token(self) -> str:
        return f"{self.host}|{self.pid}|{self.start}|{uuid.uuid4().hex[:12]}"


_current: Owner | None = None


def current_owner() -> Owner:
    """This process's identity (recomputed after a fork)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        _current = Owner(_host(), pid, _process_start_ticks(pid))
    return _current


def parse_token(token: str) -> Owner | None:
    parts = token.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return Owner(parts[0], int(parts[1]), parts[2])


def owner_is_dead(token: str | None) -> bool:
    """True only when the token's process is on this host and certainly gone."""
    if token is None:
        return True
    owner = parse_token(token)
    if owner is None or owner.host != _host():
        return False
    if owner.pid == os.getpid():
        # Our own process: dead only if the token was minted by a previous
        # process that had our pid (checked through the start time).
        return owner.start != current_owner().start
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by another user
    stat = _proc_stat(owner.pid)
    if stat is None:
        # No /proc (not Linux) or gone between the two checks.
        return owner.start != "?"
    state, start = stat
    if state in ("Z", "X"):
        return True  # killed, not yet reaped by its parent
    return owner.start != "?" and start != owner.start
