"""The results cache: one JSON file per project root, loaded once per run.

An entry holds a file's raw findings (every rule, before selection and
suppression, so changing ``select`` never invalidates it) and, when they were
computed, its suppression comments. The whole cache is keyed by the tool
version, the rule options and the project index fingerprint: when any step
definition in the project changes, every file is checked again, because a
step defined in one module changes findings in others.

A file is recognised as unchanged by (mtime, size, inode) first; if those
differ, by the blake2b hash of its bytes, which is the truth. A file modified
within the last couple of seconds does not get its stat stored, so a change
within the file system's timestamp granularity cannot go unnoticed.

The results file is JSON, not pickle: a cache directory inside a repository
must not be able to run code. The project index (built by the analysis core,
and only promised to be picklable) is cached as a pickle read through an
unpickler that can rebuild zart-lint's own data classes and nothing else. A
corrupt or foreign cache is ignored, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zart_lint.core._finding import Edit, Finding, Fix
from zart_lint.engine._suppression import Suppression

FORMAT = 2
_RACY_NS = 2_000_000_000


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


StatKey = tuple[int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class Entry:
    digest: str
    findings: list[Finding]  # path left empty: filled in at display time
    suppressions: list[Suppression] | None
    stat: StatKey | None = None
    # Why the file could not be analysed (valid Python libcst cannot parse), if so.
    notice: str | None = None
    # Whether its syntax was checked (parsed, or named on the command line): a file a
    # directory walk skipped unparsed is checked again when it is named explicitly.
    syntax_checked: bool = True


def _encode_finding(f: Finding) -> list[Any]:
    fix = None
    if f.fix is not None:
        fix = [
            f.fix.message,
            [[e.line, e.column, e.end_line, e.end_column, e.content] for e in f.fix.edits],
        ]
    return [f.code, f.message, f.line, f.column, f.end_line, f.end_column, fix]


def _decode_finding(raw: list[Any]) -> Finding:
    code, message, line, column, end_line, end_column, fix = raw
    decoded = None
    if fix is not None:
        decoded = Fix(str(fix[0]), tuple(Edit(*e) for e in fix[1]))
    return Finding(code, message, "", line, column, end_line, end_column, decoded)


def _encode_suppression(s: Suppression) -> list[Any]:
    return [
        s.line,
        s.column,
        s.end_column,
        s.kind,
        list(s.codes) if s.codes is not None else None,
        s.codes_column,
        s.codes_end_column,
        s.comment_end_column,
    ]


def _decode_suppression(raw: list[Any]) -> Suppression:
    line, col, end, kind, codes, cstart, cend, comment_end = raw
    return Suppression(
        line, col, end, kind, tuple(codes) if codes is not None else None, cstart, cend, comment_end
    )


class Cache:
    """Loaded once, consulted per file, written once at the end of the run."""

    def __init__(self, directory: Path, root: Path | None, key: str) -> None:
        self.directory = directory
        name = hashlib.blake2b(str(root).encode(), digest_size=8).hexdigest()
        self.path = directory / f"results-{name}.json"
        self.key = key
        self._raw: dict[str, Any] = {}
        self._new: dict[str, Entry] = {}
        self._started_ns = time.time_ns()

    @staticmethod
    def make_key(**parts: Any) -> str:
        blob = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()

    def load(self) -> None:
        try:
            with self.path.open("rb") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("key") == self.key:
            files = data.get("files")
            if isinstance(files, dict):
                self._raw = files

    def get(self, path: str, st: StatKey | None, file_digest: str | None = None) -> Entry | None:
        """The entry for ``path`` if it is still valid for this stat or digest."""
        raw = self._raw.get(path)
        if not isinstance(raw, dict):
            return None
        try:
            stored_stat = raw.get("stat")
            if file_digest is None:
                if st is None or stored_stat is None or tuple(stored_stat) != st:
                    return None
            elif raw["digest"] != file_digest:
                return None
            entry = Entry(
                digest=raw["digest"],
                findings=[_decode_finding(f) for f in raw["findings"]],
                suppressions=(
                    None
                    if raw["suppressions"] is None
                    else [_decode_suppression(s) for s in raw["suppressions"]]
                ),
                stat=st,
                notice=raw.get("notice"),
                syntax_checked=bool(raw.get("syntax_checked", True)),
            )
        except (KeyError, TypeError, ValueError):
            return None  # written by another version, or damaged: just re-check the file
        return entry

    def has(self, path: str) -> bool:
        return path in self._raw

    def put(self, path: str, entry: Entry) -> None:
        self._new[path] = entry

    def _encode(self, entry: Entry) -> dict[str, Any]:
        stat = entry.stat
        if stat is not None and stat[0] >= self._started_ns - _RACY_NS:
            stat = None  # modified too recently to trust the timestamp
        return {
            "stat": list(stat) if stat is not None else None,
            "digest": entry.digest,
            "findings": [_encode_finding(f) for f in entry.findings],
            "suppressions": (
                None
                if entry.suppressions is None
                else [_encode_suppression(s) for s in entry.suppressions]
            ),
            "notice": entry.notice,
            "syntax_checked": entry.syntax_checked,
        }

    def save(self) -> str | None:
        """Write atomically; returns an error text instead of raising."""
        if not self._new:
            return None
        files = dict(self._raw)
        files.update({path: self._encode(e) for path, e in self._new.items()})
        # Forget files that are gone (deleted, renamed) so the cache does not grow forever.
        files = {path: e for path, e in files.items() if os.path.exists(path)}
        payload = json.dumps({"key": self.key, "files": files}, separators=(",", ":"))
        try:
            _atomic_write(self.path, payload.encode("utf-8"))
        except OSError as exc:
            return f"could not write cache {self.path}: {exc.strerror or exc}"
        return None


def _mark_cache_dir(directory: Path) -> None:
    # Keep the cache out of git and out of backups, as ruff and pytest do.
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# Automatically created by zart-lint.\n*\n", encoding="utf-8")
    tag = directory / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(
            "Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by zart-lint.\n",
            encoding="utf-8",
        )


# --------------------------------------------------------------------------- code version


def code_version() -> str:
    """The installed zart-lint, down to its files: a cache written by other code is void.

    The version number alone is not enough for an editable install (or a rule
    edited in place), which would otherwise be served stale results.
    """
    package = Path(__file__).resolve().parents[1]  # zart_lint/, every subpackage included
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(package.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(package)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- project index


_ALLOWED_BUILTINS = frozenset({"frozenset", "set", "slice", "complex", "bytearray", "range"})
_ALLOWED_PATHS = frozenset({"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath"})


class _IndexUnpickler(pickle.Unpickler):
    """Only rebuilds zart-lint's own data classes, paths and plain containers.

    The index file lives in the project's cache directory, which a pull request
    could fill: loading it must not be able to call anything else.
    """

    def find_class(self, module: str, name: str) -> Any:
        if "." not in name:
            if module == "builtins" and name in _ALLOWED_BUILTINS:
                return super().find_class(module, name)
            if module == "pathlib" and name in _ALLOWED_PATHS:
                return super().find_class(module, name)
            if module.startswith("zart_lint.") or module == "zart_lint":
                found = super().find_class(module, name)
                if isinstance(found, type) and found.__module__.startswith("zart_lint"):
                    return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an index cache")


class IndexCache:
    """What the project index read of each file, reused per file while its stat holds.

    Entries are the index's per-file scan results (``ModuleInfo``), each valid
    while the file's size, mtime and inode are unchanged: an edit re-reads one
    file, not the project. The file also holds a signature of the stats of
    *every* project file and the index fingerprint they give: a run in which no
    file changed gets the fingerprint without unpickling a single entry.
    """

    def __init__(self, directory: Path, root: Path, key: str) -> None:
        name = hashlib.blake2b(str(root).encode(), digest_size=8).hexdigest()
        self.path = directory / f"index-{name}.pickle"
        self.root = root
        self.key = key
        self._started_ns = time.time_ns()

    def signature(self, files: list[Path]) -> tuple[str, bool] | None:
        """(hash of the files' stats, whether they are old enough to trust)."""
        h = hashlib.blake2b(digest_size=16)
        newest = 0
        for rel in files:
            try:
                st = (self.root / rel).stat()
            except OSError:
                return None
            newest = max(newest, st.st_mtime_ns)
            h.update(f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\0{st.st_ino}\n".encode())
        return h.hexdigest(), newest < self._started_ns - _RACY_NS

    def load(self) -> tuple[str | None, str | None, Callable[[], dict[str, Any]]] | None:
        """(signature, fingerprint, a function unpickling the per-file entries), or None."""
        try:
            with self.path.open("rb") as fh:
                stored = _IndexUnpickler(fh).load()
        except Exception:
            return None  # missing, damaged, foreign: read the files instead
        if not (
            isinstance(stored, tuple)
            and len(stored) == 4
            and stored[0] == self.key
            and isinstance(stored[3], bytes)
        ):
            return None
        payload: bytes = stored[3]

        def entries() -> dict[str, Any]:
            try:
                found = _IndexUnpickler(io.BytesIO(payload)).load()
            except Exception:
                return {}
            return found if isinstance(found, dict) else {}

        signature = stored[1] if isinstance(stored[1], str) else None
        fingerprint = stored[2] if isinstance(stored[2], str) else None
        return signature, fingerprint, entries

    def save(
        self, entries: dict[str, Any], signature: str | None, fingerprint: str | None
    ) -> str | None:
        """Store the entries (those of files modified too recently to trust are left out)."""
        trusted = {
            rel: entry
            for rel, entry in entries.items()
            if entry[0][0] < self._started_ns - _RACY_NS
        }
        try:
            inner = pickle.dumps(trusted, protocol=pickle.HIGHEST_PROTOCOL)
            payload = pickle.dumps(
                (self.key, signature, fingerprint, inner), protocol=pickle.HIGHEST_PROTOCOL
            )
            _atomic_write(self.path, payload)
        except (OSError, pickle.PicklingError) as exc:
            return f"could not write index cache {self.path}: {exc}"
        return None


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _mark_cache_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
