"""The parent side of tests that run real child processes: start, read, SIGKILL."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ChildProcess:
    """A running ``python -m <module> ...`` child; its stdout lines are collected as they come.

    Shared by the crash, race and primitives tests: they start real processes and
    SIGKILL them, then read what the child printed (one fact a line).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        args: Sequence[str],
        *,
        stderr_path: Path,
        module: str,
        stdin: bool = False,
    ) -> None:
        self.args = list(args)
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=dict(env),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, prefix: str, timeout: float = 20.0) -> str:
        """Wait for the next stdout line starting with ``prefix``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.001))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"{self}: no {prefix!r} line within {timeout}s") from None
            if line is None:
                self._queue.put(None)  # a later expect() fails at once too
                raise AssertionError(
                    f"{self}: exited without a {prefix!r} line; lines: {self.lines}\n"
                    f"{self.stderr()}"
                )
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout: float = 30.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self} did not finish within {timeout}s; lines: {self.lines}\n{self.stderr()}"
            ) from None
        self._reader.join(10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._stderr.close()
        return rc

    def kill(self) -> None:
        """SIGKILL the child (if it still runs) and reap it."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._stderr.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def field(self, prefix: str) -> str | None:
        """The rest of the first stdout line starting with ``prefix + ' '``."""
        for line in self.lines:
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1 :]
        return None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"<child {self.pid}: {' '.join(self.args)}>"
