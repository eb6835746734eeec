"""Durable functions run by the `zart worker` processes of tests/runtime/test_wakeups.py."""

from __future__ import annotations

import os

import zart
from zart import durable, step


@step("pid")
async def pid_step() -> int:
    return os.getpid()


@durable("wake-echo")
async def echo(value: int) -> list[int]:
    """[value, pid of the process that ran it]."""
    return [value, await pid_step()]


@durable("wake-nap")
async def nap(seconds: float) -> int:
    """Sleeps (suspended when longer than a second), then: the pid that woke it."""
    await zart.sleep("nap", seconds)
    return await pid_step()


__all__ = ["echo", "nap"]
