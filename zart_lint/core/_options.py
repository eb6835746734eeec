"""Options that change what the rules recognise (set from ``[tool.zart-lint]``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleOptions:
    """Extra decorators, by dotted name, that make a function a step or a durable.

    A dotted name (``myapp.tasks.task``) matches the decorator however it was
    imported (``@task``, ``@tasks.task``, ``@myapp.tasks.task``); a name without
    a dot matches the decorator exactly as written.
    """

    extra_step_decorators: tuple[str, ...] = ()
    extra_durable_decorators: tuple[str, ...] = ()

    def decorator_words(self) -> frozenset[str]:
        """The identifiers a file must mention to use one of the extra decorators."""
        return frozenset(
            name.rsplit(".", 1)[-1]
            for name in (*self.extra_step_decorators, *self.extra_durable_decorators)
        )
