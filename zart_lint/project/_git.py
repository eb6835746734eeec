"""Reading the Python files of a git revision (``zart-lint --against REF``), with git itself.

Nothing here touches the working tree or the repository's state: ``rev-parse``
finds the repository and the commit, ``ls-tree`` lists the revision's files and
one ``cat-file --batch`` reads their contents.
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath


class GitError(Exception):
    """Not in a git repository, an unknown revision, or git itself failed."""


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, check=False
        )
    except OSError as exc:  # git is not installed
        raise GitError(f"cannot run git: {exc.strerror or exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git {args[0]} failed")
    return done.stdout


def repository_root(start: Path) -> Path:
    """The top directory of the work tree holding ``start``."""
    directory = start if start.is_dir() else start.parent
    try:
        out = _git(directory, "rev-parse", "--show-toplevel")
    except GitError:
        raise GitError(f"{start} is not in a git repository") from None
    return Path(out.decode().strip())


def resolve_commit(root: Path, ref: str) -> str:
    """The commit ``ref`` names (a branch, tag, ``HEAD~1``, a hash ...)."""
    if not ref or ref.startswith("-"):
        raise GitError(f"unknown revision {ref!r}")
    try:
        out = _git(
            root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        )
    except GitError:
        raise GitError(f"unknown revision {ref!r} (not a commit of {root})") from None
    return out.decode().strip()


def python_files_at(root: Path, commit: str, prefixes: tuple[str, ...] = ("",)) -> dict[str, str]:
    """Repository-relative POSIX path -> text of every ``*.py`` file at ``commit``
    under one of ``prefixes`` ("" is the whole tree). Files that are not UTF-8 are left out."""
    listing = _git(root, "ls-tree", "-r", "-z", "--full-tree", commit)
    blobs: dict[str, str] = {}
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        parts = meta.split()
        path = raw_path.decode("utf-8", "replace")
        if len(parts) != 3 or parts[1] != b"blob" or not path.endswith(".py"):
            continue
        if any(_under(path, prefix) for prefix in prefixes):
            blobs[path] = parts[2].decode()
    return _read_blobs(root, blobs)


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or PurePosixPath(path).is_relative_to(prefix)


def _read_blobs(root: Path, blobs: dict[str, str]) -> dict[str, str]:
    if not blobs:
        return {}
    out = _git(
        root, "cat-file", "--batch", stdin="".join(f"{b}\n" for b in blobs.values()).encode()
    )
    texts: dict[str, str] = {}
    position = 0
    for path in blobs:
        header_end = out.index(b"\n", position)
        size = int(out[position:header_end].split()[2])
        content = out[header_end + 1 : header_end + 1 + size]
        position = header_end + 1 + size + 1  # the content is followed by a newline
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            continue
        texts[path] = text.removeprefix("\ufeff")
    return texts
