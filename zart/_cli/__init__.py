"""The ``zart`` command (entry point: ``zart.cli:main``).

* ``_root``: the command group, its global options and the engine in ``ctx.obj``.
* ``_common``: one-line usage errors, importing user modules, ``--input``, tables.
* ``_run``: ``run``.
* ``_inspect``: ``status``, ``list``, ``steps``, ``cancel``, ``send-event``.
* ``_admin``: ``retry-step``, ``restart``, ``rerun-from``, ``resume``, ``audit``.
* ``_pause``: ``pause`` (pause rules; ``resume --rule`` removes them).
* ``_runtime``: ``worker``, ``serve``, ``db upgrade``.
* ``_schedule``: ``schedule add|list|remove|tick``.
* ``_gc``: ``gc`` (retention).
* ``_queues``: ``queues`` (zart.Queue: depth, running, limits).
* ``_deploy``: ``export``, ``replay`` (checking a deploy).
"""

# Importing the command modules registers their commands on ``main``.
from zart._cli import (  # noqa: F401
    _admin,
    _deploy,
    _gc,
    _inspect,
    _pause,
    _queues,
    _run,
    _runtime,
    _schedule,
)
from zart._cli._root import main

__all__ = ["main"]
