"""What the single pass over a file records, for the rules to query afterwards.

The walk (``_walker.py``) records facts and resolves nothing: a call may come
before the import or the definition it refers to, and a name rebound later in a
loop body still varies, so every question is answered once the whole file has
been seen (``_analysis.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import libcst as cst

# How a loop region binds a name (see Loop.bindings).
TARGET = 0  # a for / comprehension target: a new value each iteration of its loop
ASSIGN = 1  # name = value (also walrus): varies when the value does
AUG = 2  # name += value: a counter, varies
OTHER = 3  # with-as, except-as, import, def, del, match capture ...: unknown, varies

# What a name means in a scope (see Scope.meanings).
IMPORT = 0  # bound by an import; the payload is the qualified name
DEF = 1  # bound by a def; the payload is the FunctionDef node
LOCAL = 2  # bound by anything else (parameter, assignment ...)
ALIAS = 3  # name = other.name; the payload is the dotted parts of the value
PARTIAL = 4  # name = partial(f, ...); the payload is a PartialRef
CLASS = 5  # bound by a class statement; the payload is the ClassDef node

Meaning = tuple[int, object]


@dataclass(frozen=True)
class ImportRef:
    """An import as written; relative ones are resolved once the file's place is known.

    ``import a.b as x`` -> (0, "a.b", None); ``import a.b`` binds ``a`` -> (0, "a", None);
    ``from ..pkg import name`` -> (2, "pkg", "name").
    """

    level: int
    module: str
    name: str | None


@dataclass(frozen=True, eq=False)
class PartialRef:
    """``name = partial(target, ...)`` (compared by identity: each call is its own)."""

    function: tuple[str, ...]  # the callee as written ("functools", "partial")
    call: cst.Call
    in_loop: bool  # made in a loop: its arguments may differ per iteration


LOCAL_MEANING: Meaning = (LOCAL, None)

LoopKind = Literal["for", "async for", "while", "comprehension"]
ScopeKind = Literal["module", "function", "lambda", "class"]
LoopBinding = tuple[int, "cst.BaseExpression | None", "Loop"]
# (id of an if/match/ternary node, index of the branch, whether that branch
# ends in return/raise so that nothing after the if can run once it did).
Branch = tuple[int, int, bool]
# Name -> value of its latest unconditional assignment in the current loop iteration.
Defs = dict[str, "cst.BaseExpression"]


class Loop:
    """A loop; its region is what runs once per iteration (see SPEC section 4)."""

    __slots__ = ("bindings", "calls", "kind", "mutated", "node", "parent", "passed", "scope")

    def __init__(
        self,
        node: cst.For | cst.While | cst.CompFor,
        kind: LoopKind,
        parent: Loop | None,
        scope: Scope,
    ) -> None:
        self.node = node
        self.kind: LoopKind = kind
        self.parent = parent  # enclosing loop of the same scope
        self.scope = scope
        # Every binding made anywhere in the region, nested loops included.
        self.bindings: dict[str, list[LoopBinding]] = {}
        # Names whose object may change in place in the region (x.append(..), x.a = ..).
        self.mutated: set[str] = set()
        # Names passed as call arguments in the region, with the call: mutation,
        # unless the call turns out to be a step or the value is immutable.
        self.passed: list[tuple[str, CallSite | None]] = []
        # Every call in the region (None: callee not a dotted name). An unknown
        # function may change any object it can reach, not only its arguments.
        self.calls: list[CallSite | None] = []

    def chain(self) -> list[Loop]:
        """This loop and its enclosing loops, outermost first."""
        loops: list[Loop] = []
        loop: Loop | None = self
        while loop is not None:
            loops.append(loop)
            loop = loop.parent
        loops.reverse()
        return loops


class Scope:
    """A module, function, lambda or class body."""

    __slots__ = (
        "decorators",
        "globals",
        "is_async",
        "kind",
        "meanings",
        "name",
        "named_receivers",
        "node",
        "parent",
        "used",
        "values",
    )

    def __init__(
        self,
        kind: ScopeKind,
        node: cst.CSTNode,
        parent: Scope | None,
        name: str = "",
        is_async: bool = False,
        decorators: tuple[cst.Decorator, ...] = (),
    ) -> None:
        self.kind: ScopeKind = kind
        self.node = node
        self.parent = parent
        self.name = name
        self.is_async = is_async
        self.decorators = decorators
        self.meanings: dict[str, list[Meaning]] = {}
        # Assigned values per name (None for a binding that is not an assignment):
        # tells an immutable constant apart from an object a call could mutate.
        self.values: dict[str, list[cst.BaseExpression | None]] = {}
        self.globals: set[str] = set()
        # Every identifier used in the scope, nested scopes included (free index names).
        self.used: set[str] = set()
        # Names on which `.named(...)` is called: `call = step(x)` ... `call.named(..)`.
        self.named_receivers: set[str] = set()


class CallSite:
    """A call whose callee is a dotted name: a step, primitive or clock candidate."""

    __slots__ = ("branches", "call", "defs", "in_fstring", "loop", "parts", "scope")

    def __init__(
        self,
        call: cst.Call,
        parts: tuple[str, ...],
        scope: Scope,
        loop: Loop | None,
        branches: tuple[Branch, ...],
        in_fstring: bool,
        defs: Defs | None = None,
    ) -> None:
        self.call = call
        # Names assigned earlier in the same iteration of ``loop``, on every path
        # (``for x in xs: x = 0; ...``): their value here is that assignment's.
        self.defs = defs
        self.parts = parts
        self.scope = scope
        self.loop = loop  # innermost enclosing loop of the same scope
        self.branches = branches
        self.in_fstring = in_fstring


class FileModel:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.module_scope = Scope("module", module, None)
        self.scopes: list[Scope] = [self.module_scope]
        self.def_scopes: dict[int, Scope] = {}  # id(FunctionDef) -> its scope
        self.class_scopes: dict[int, Scope] = {}  # id(ClassDef) -> its scope
        self.calls: list[CallSite] = []
        # id(call) -> (call, attribute): `call` is `<inner>.<attribute>(...)`.
        self.chain_parent: dict[int, tuple[cst.Call, str]] = {}
        # id(call) -> index in module.body of the top-level statement holding it
        # (lets positions be computed for that statement alone).
        self.top_level: dict[int, int] = {}
        self.bare_statements: set[int] = set()  # ids of calls that are a whole statement
        self.assigned: dict[int, tuple[str, ...]] = {}  # id(call) -> names it is assigned to
        self.star_imports: list[ImportRef] = []  # from <module> import *
        # Names rebound from elsewhere (global / nonlocal): never provably invariant.
        self.volatile: set[str] = set()
        self.loops: list[Loop] = []  # every loop, so that release() can reach them

    def release(self) -> None:
        """Break the reference cycles through the loops (their bindings and call sites
        point back at them), so that the file's tree is freed as soon as it is dropped.

        Without this every linted file stays in memory until the cyclic garbage
        collector runs, and those collections, traversing ever more objects,
        cost a good part of a parse. The model must not be queried afterwards.
        """
        for loop in self.loops:
            loop.bindings = {}
            loop.calls = []
            loop.passed = []
        self.loops = []
