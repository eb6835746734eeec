"""The 5-field cron parser, as the operations layer names it: it lives in the engine
(``zart._engine._cron``), which ``Zart.schedule`` uses."""

from __future__ import annotations

from zart._ops._internals import Cron, CronError

__all__ = ["Cron", "CronError"]
