"""The ``zart`` command (entry point: ``zart.cli:main``).

* ``_root``: the command group, its global options and the engine in ``ctx.obj``.
* ``_common``: one-line usage errors, importing user modules, ``--input``, tables.
* ``_run``: ``run``.
* ``_inspect``: ``status``, ``list``, ``steps``, ``cancel``, ``send-event``.
* ``_admin``: ``retry-step``, ``restart``, ``rerun-from``, ``audit``.
* ``_runtime``: ``worker``, ``serve``, ``db upgrade``.
* ``_schedule``: ``schedule add|list|remove|tick``.
* ``_deploy``: ``export``, ``replay`` (checking a deploy).
"""

# Importing the command modules registers their commands on ``main``.
from zart._cli import _admin, _deploy, _inspect, _run, _runtime, _schedule  # noqa: F401
from zart._cli._root import main

__all__ = ["main"]
