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

import itertools

import libcst as cst

from zart_lint.analysis._analysis import Analysis
from zart_lint.analysis._model import TARGET, Loop
from zart_lint.analysis._naming import LoopVerdict
from zart_lint.analysis._report import FixPlan, PlannedEdit

_INDEX_NAMES = ("i", "idx", "index")


class Fixer:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        # id(loop) -> its index name, or the header text around a new one; None: no index.
        self._shapes: dict[int, str | tuple[str, str] | None] = {}
        # id(loop) -> (index name, header edit or None), decided once per loop.
        self._loop_indices: dict[int, tuple[str, PlannedEdit | None]] = {}
        self._allocated: list[tuple[Loop, str]] = []  # index names handed out, by loop

    def indices(self, loop: Loop) -> list[str] | None:
        """Index names for the loop and its enclosing loops, outermost first."""
        entries = self._entries(loop)
        return [name for name, _edit in entries] if entries is not None else None

    def _entries(self, loop: Loop) -> list[tuple[str, PlannedEdit | None]] | None:
        chain = loop.chain()
        if any(self._shape(each) is None for each in chain):
            return None  # checked first: index names are only handed out to fixable loops
        return [self._loop_index(each) for each in chain]

    def plan(self, verdict: LoopVerdict) -> FixPlan | None:
        invocation = verdict.invocation
        innermost = invocation.site.loop
        if innermost is None or invocation.site.in_fstring or verdict.code == "ZRT003":
            return None
        entries = self._entries(innermost)
        if entries is None:
            return None
        names = [name for name, _edit in entries]
        header_edits = [edit for _name, edit in entries if edit is not None]
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

    def _loop_index(self, loop: Loop) -> tuple[str, PlannedEdit | None]:
        key = id(loop)
        if key not in self._loop_indices:
            shape = self._shape(loop)
            assert shape is not None and isinstance(loop.node, cst.For)
            if isinstance(shape, str):
                self._loop_indices[key] = (shape, None)
            else:
                name = self._allocate(loop)
                target_code, iter_code = shape
                content = f"{name}, {target_code} in enumerate({iter_code})"
                header = PlannedEdit(loop.node.target, "start", loop.node.iter, "end", content)
                self._loop_indices[key] = (name, header)
        return self._loop_indices[key]

    def _shape(self, loop: Loop) -> str | tuple[str, str] | None:
        key = id(loop)
        if key not in self._shapes:
            self._shapes[key] = self._find_shape(loop)
        return self._shapes[key]

    def _find_shape(self, loop: Loop) -> str | tuple[str, str] | None:
        """The loop's usable index name, or (target, iterable) code to enumerate; None."""
        node = loop.node
        if loop.kind != "for" or not isinstance(node, cst.For) or loop.scope.kind == "class":
            return None
        existing = self._existing_index(loop, node)
        if existing is not None:
            return existing
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
        return target_code, iter_code

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
        """A name unused in the function and by the index of any loop nested with this one.

        Sibling loops may share a name: each binds it afresh before using it.
        """
        chain = loop.chain()
        taken = {
            name
            for other, name in self._allocated
            if other.scope is loop.scope and (other in chain or loop in other.chain())
        }
        candidates = itertools.chain(_INDEX_NAMES, (f"i{n}" for n in itertools.count(2)))
        name = next(
            name for name in candidates if name not in loop.scope.used and name not in taken
        )
        self._allocated.append((loop, name))
        return name


def _fstring_text(text: str) -> str | None:
    """``text`` as the literal part of an f-string, or None if that needs escapes."""
    if any(char in text for char in "\\\r\n") or ('"' in text and "'" in text):
        return None
    return text.replace("{", "{{").replace("}", "}}")
