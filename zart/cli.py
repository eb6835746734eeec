"""The ``zart`` command: run, inspect and steer durable executions.

The commands live in the ``zart._cli`` package; this module is the entry point
(``zart = "zart.cli:main"``; ``python -m zart``).
"""

from zart._cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
