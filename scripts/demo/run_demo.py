"""Drive the demo: run a durable loop, kill -9 it mid-way, resume it, then lint a bug."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 10
KILL_AFTER = 4  # kill once this many items have run


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="zart-demo-"))
    env = dict(os.environ, ZART_DATABASE_URL=f"sqlite:///{workdir / 'demo.db'}", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "batch_processor.py"),
        "--id", "demo-batch", "--items", str(ITEMS), "--delay", "0.3", "--notify", "ana",
    ]

    banner(f"1. run a durable loop over {ITEMS} items, and kill -9 it after {KILL_AFTER} items")
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    ran_before: list[str] = []
    for line in child.stdout:
        print(f"   [first run] {line.rstrip()}", flush=True)
        if line.startswith("ran "):
            ran_before.append(line.split()[1])
            if len(ran_before) == KILL_AFTER:
                time.sleep(0.05)  # let the checkpoint commit, as a real crash would land anywhere
                child.send_signal(signal.SIGKILL)
                break
    child.wait()
    print(f"   process killed with SIGKILL (exit {child.returncode})")

    banner("2. what the database holds: `zart steps demo-batch`")
    subprocess.run([sys.executable, "-m", "zart", "steps", "demo-batch"], env=env, check=True)

    banner("3. run again with the same execution id: finished steps are skipped")
    resumed = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    ran_after = []
    for line in resumed.stdout.splitlines():
        print(f"   [resumed]   {line}")
        if line.startswith("ran "):
            ran_after.append(line.split()[1])
    steps = json.loads(
        subprocess.run(
            [sys.executable, "-m", "zart", "steps", "demo-batch", "--json"],
            env=env, stdout=subprocess.PIPE, text=True, check=True,
        ).stdout
    )
    item_steps = [s["name"] for s in steps if s["name"].startswith("process-item-")]
    skipped = [name for name in item_steps if name not in ran_after]
    print(f"\n   skipped on resume (stored results returned): {', '.join(skipped)}")
    print(f"   ran on resume: {', '.join(ran_after)}")
    assert len(item_steps) == ITEMS, item_steps
    assert set(skipped) | set(ran_after) == set(item_steps)
    assert all(name in ran_before for name in skipped), "a skipped step never ran"

    banner("4. zart-lint catches the silent cached-result bug")
    buggy = ROOT / "scripts" / "demo" / "buggy_loop.py"
    print(f"   $ zart-lint {buggy.relative_to(ROOT)}", flush=True)
    lint = subprocess.run([sys.executable, "-m", "zart_lint", "--no-cache", str(buggy)], cwd=ROOT)
    if lint.returncode != 1:
        print(f"expected zart-lint to report the bug (exit 1), got exit {lint.returncode}")
        return 1
    print("\ndemo finished: resume skipped completed steps, and zart-lint found the bug (exit 1).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
