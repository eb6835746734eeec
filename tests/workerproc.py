"""A `zart worker MODULE ...` child process for the tests, its output in a log file
(shared by the queue and wake-up tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """``python -m zart --database-url URL worker MODULE *options``."""

    def __init__(self, url: str, log_path: Path, module: str, *options: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("ZART_DATABASE_URL", None)
        self.log_path = log_path
        cmd = [sys.executable, "-m", "zart", "--database-url", url, "worker", module, *options]
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        """Until the worker's log shows ``text`` (it must not exit meanwhile)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc.poll() is None, f"worker exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"worker never logged {text!r}:\n{self.log()}"
            time.sleep(0.02)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
