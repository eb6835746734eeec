"""Safe rewrites for ZRT001 / ZRT002: give each iteration its own name.

``await send(x)`` in ``for x in xs:`` becomes ``await send(x).named(f"send-{i}")``
with the header rewritten to ``for i, x in enumerate(xs):``; an existing
``enumerate`` index or ``range`` target is reused. Nested loops use every
enclosing loop's index (``f"send-{i}-{j}"``).

Only plain ``for`` loops in a function or at module level are rewritten: no
``while`` or comprehension (no place for an index), no ``async for``
(``enumerate`` does not take async iterables), no call inside an f-string
(quotes), no starred or attribute loop targets.

Every finding in a loop that needs a header rewrite carries the *same* header
edit (same span, same text), so that applying several fixes can drop the
duplicates; the index name is chosen once per loop for that reason.
"""

from __future__ import annotations

import libcst as cst

from zart_lint._analysis import Analysis
from zart_lint._model import TARGET, Loop
from zart_lint._naming import LoopVerdict
from zart_lint._report import FixPlan, PlannedEdit

_INDEX_NAMES = ("i", "idx", "index")


class Fixer:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        # id(loop) -> (index name, header edit or None); None when the loop is not fixable.
        self._loop_indices: dict[int, tuple[str, PlannedEdit | None] | None] = {}
        self._allocated: dict[int, set[str]] = {}  # id(scope) -> index names handed out

    def indices(self, loop: Loop) -> list[str] | None:
        """Index names for the loop and its enclosing loops, outermost first."""
        found = [self._loop_index(each) for each in loop.chain()]
        if any(entry is None for entry in found):
            return None
        return [entry[0] for entry in found if entry is not None]

    def plan(self, verdict: LoopVerdict) -> FixPlan | None:
        invocation = verdict.invocation
        innermost = invocation.site.loop
        if innermost is None or invocation.site.in_fstring or verdict.code == "ZRT003":
            return None
        entries = [self._loop_index(loop) for loop in innermost.chain()]
        if any(entry is None for entry in entries):
            return None
        names = [entry[0] for entry in entries if entry is not None]
        header_edits = [entry[1] for entry in entries if entry is not None and entry[1] is not None]
        suffix = "".join(f"-{{{name}}}" for name in names)

        expression = verdict.expression
        if verdict.constant is not None:
            escaped = _fstring_text(verdict.constant)
            if escaped is None:
                return None
            quote = "'" if '"' in verdict.constant else '"'
            new_name = f"f{quote}{escaped}{suffix}{quote}"
        elif isinstance(expression, cst.Name):
            new_name = f'f"{{{expression.value}}}{suffix}"'
        else:
            return None

        if expression is not None:
            call_edit = PlannedEdit.replace(expression, new_name)
            change = f"name it {new_name}"
        else:
            call_edit = PlannedEdit.insert_after(invocation.call, f".named({new_name})")
            change = f"add .named({new_name})"
        if header_edits:
            change += " and enumerate the loop" + ("s" if len(header_edits) > 1 else "")
        return FixPlan(change[0].upper() + change[1:], (*header_edits, call_edit))

    def _loop_index(self, loop: Loop) -> tuple[str, PlannedEdit | None] | None:
        key = id(loop)
        if key not in self._loop_indices:
            self._loop_indices[key] = self._find_or_add_index(loop)
        return self._loop_indices[key]

    def _find_or_add_index(self, loop: Loop) -> tuple[str, PlannedEdit | None] | None:
        node = loop.node
        if loop.kind != "for" or not isinstance(node, cst.For) or loop.scope.kind == "class":
            return None
        existing = self._existing_index(loop, node)
        if existing is not None:
            return existing, None
        target = node.target
        if isinstance(target, (cst.Tuple, cst.List)):
            if any(isinstance(element, cst.StarredElement) for element in target.elements):
                return None
        elif not isinstance(target, cst.Name):
            return None
        if not self.analysis.is_builtin("enumerate", loop.scope):
            return None
        target_code = self.analysis.code(target)
        if isinstance(target, cst.Tuple) and not target.lpar:
            target_code = f"({target_code})"
        iter_code = self.analysis.code(node.iter)
        if isinstance(node.iter, cst.Tuple) and not node.iter.lpar:
            iter_code = f"({iter_code})"
        name = self._allocate(loop)
        header = PlannedEdit(
            target, "start", node.iter, "end", f"{name}, {target_code} in enumerate({iter_code})"
        )
        return name, header

    def _existing_index(self, loop: Loop, node: cst.For) -> str | None:
        """``i`` of ``for i, x in enumerate(xs)`` or of ``for i in range(n)``, if never rebound."""
        iterable, target = node.iter, node.target
        if not (
            isinstance(iterable, cst.Call)
            and isinstance(iterable.func, cst.Name)
            and self.analysis.is_builtin(iterable.func.value, loop.scope)
        ):
            return None
        candidate: cst.BaseExpression | None = None
        if iterable.func.value == "enumerate" and isinstance(target, (cst.Tuple, cst.List)):
            if len(target.elements) == 2:
                candidate = target.elements[0].value
        elif iterable.func.value == "range":
            candidate = target
        if not isinstance(candidate, cst.Name):
            return None
        bindings = loop.bindings.get(candidate.value, [])
        if candidate.value in self.analysis.model.volatile or any(
            kind != TARGET or source is not loop for kind, _value, source in bindings
        ):
            return None
        return candidate.value

    def _allocate(self, loop: Loop) -> str:
        scope = loop.scope
        taken = self._allocated.setdefault(id(scope), set())
        number = 2
        candidates = list(_INDEX_NAMES)
        while True:
            for name in candidates:
                if name not in scope.used and name not in taken:
                    taken.add(name)
                    return name
            candidates = [f"i{number}"]
            number += 1


def _fstring_text(text: str) -> str | None:
    """``text`` as the literal part of an f-string, or None if that needs escapes."""
    if any(char in text for char in "\\\r\n") or ('"' in text and "'" in text):
        return None
    return text.replace("{", "{{").replace("}", "}}")
