"""The results cache: hits skip the parser, changes are noticed, damage is harmless."""

from __future__ import annotations

import json
import os
import pickle
import re
import textwrap
from pathlib import Path

from zart_lint import Edit, Finding, Fix
from zart_lint.engine._cache import Cache, Entry, digest
from zart_lint.engine._suppression import Suppression

from cli_helpers import BUGGY, CLEAN, invoke, write_project

STATS = re.compile(r"checked (\d+) files \(cached: (\d+), parsed: (\d+), skipped: (\d+)\)")


def run_stats(tmp_path: Path, *args: str) -> tuple[int, dict[str, int], str]:
    out = invoke(["--verbose", "--output-format", "concise", *args], tmp_path)
    m = STATS.search(out.stderr)
    assert m, out.stderr
    files, cached, parsed, skipped = map(int, m.groups())
    return (
        out.code,
        {"files": files, "cached": cached, "parsed": parsed, "skipped": skipped},
        out.stdout,
    )


def project(tmp_path: Path) -> Path:
    return write_project(
        tmp_path,
        {"a.py": BUGGY, "b.py": CLEAN, "c.py": BUGGY, "plain.py": "print('no durable here')\n"},
    )


def cache_files(root: Path) -> list[Path]:
    return sorted((root / ".zart-lint-cache").glob("results-*.json"))


def test_second_run_is_answered_by_the_cache(tmp_path: Path) -> None:
    project(tmp_path)
    code1, cold, out1 = run_stats(tmp_path)
    assert cold == {"files": 4, "cached": 0, "parsed": 3, "skipped": 1}
    code2, warm, out2 = run_stats(tmp_path)
    assert warm == {"files": 4, "cached": 4, "parsed": 0, "skipped": 0}
    assert (code1, out1) == (code2, out2)
    [cache] = cache_files(tmp_path)
    data = json.loads(cache.read_text())
    assert set(data["files"]) == {str(tmp_path / n) for n in ("a.py", "b.py", "c.py", "plain.py")}
    # The cache keeps fixes, so the warm report still offers them.
    full = invoke([], tmp_path)
    assert "[*] 2 fixable with the `--fix` option." in full.stdout


def test_changed_file_is_checked_again(tmp_path: Path) -> None:
    project(tmp_path)
    run_stats(tmp_path)
    # Fix the loop, leaving the step definitions (the project index) as they were.
    fixed = BUGGY.replace("await process_item(item)", 'await process_item(item).named(f"p-{item}")')
    (tmp_path / "a.py").write_text(fixed, encoding="utf-8")
    _, stats, out = run_stats(tmp_path)
    assert stats["parsed"] == 1 and stats["cached"] == 3
    assert [line.split(":")[0] for line in out.splitlines()] == ["c.py"]


def test_touched_but_unchanged_file_stays_cached(tmp_path: Path) -> None:
    project(tmp_path)
    run_stats(tmp_path)
    st = (tmp_path / "a.py").stat()
    os.utime(tmp_path / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    _, stats, _ = run_stats(tmp_path)
    assert stats["cached"] == 4 and stats["parsed"] == 0


def test_old_files_hit_on_stat_alone(tmp_path: Path) -> None:
    project(tmp_path)
    old = 1_600_000_000_000_000_000
    for path in tmp_path.glob("*.py"):
        os.utime(path, ns=(old, old))
    run_stats(tmp_path)
    [cache] = cache_files(tmp_path)
    entries = json.loads(cache.read_text())["files"]
    assert all(e["stat"] is not None for e in entries.values())
    _, stats, _ = run_stats(tmp_path)
    assert stats["cached"] == 4


def test_rule_selection_does_not_invalidate_the_cache(tmp_path: Path) -> None:
    project(tmp_path)
    run_stats(tmp_path)
    code, stats, out = run_stats(tmp_path, "--select", "ZRT002")
    assert (code, out, stats["cached"]) == (0, "", 4)
    code, stats, out = run_stats(tmp_path)
    assert code == 1 and stats["cached"] == 4 and out.count("ZRT001") == 2


def test_step_definition_change_rechecks_the_callers(tmp_path: Path) -> None:
    steps = textwrap.dedent(
        """\
        from zart import step


        @step("process-item")
        async def process_item(item: str) -> str:
            return item
        """
    )
    flows = textwrap.dedent(
        """\
        from zart import durable

        from steps import process_item


        @durable("batch")
        async def batch(items: list[str]) -> None:
            for item in items:
                await process_item(item)
        """
    )
    write_project(tmp_path, {"steps.py": steps, "flows.py": flows})
    code, _, out = run_stats(tmp_path)
    assert code == 1 and out.startswith("flows.py:9:")
    (tmp_path / "steps.py").write_text(steps.replace('"process-item"', '"process-item-{item}"'))
    code, stats, out = run_stats(tmp_path)
    assert (code, out) == (0, "")
    assert stats["cached"] == 0


def test_corrupt_cache_is_ignored_and_replaced(tmp_path: Path) -> None:
    project(tmp_path)
    run_stats(tmp_path)
    [cache] = cache_files(tmp_path)
    cache.write_text("{not json")
    code, stats, _ = run_stats(tmp_path)
    assert code == 1 and stats["cached"] == 0
    json.loads(cache.read_text())
    # a well-formed file with damaged entries is no better, and no worse
    data = json.loads(cache.read_text())
    for entry in data["files"].values():
        entry["findings"] = [["ZRT001"]]
    cache.write_text(json.dumps(data))
    code, stats, _ = run_stats(tmp_path)
    assert code == 1 and stats["cached"] == 0


def test_no_cache_writes_nothing(tmp_path: Path) -> None:
    project(tmp_path)
    code, stats, _ = run_stats(tmp_path, "--no-cache")
    assert code == 1 and stats["cached"] == 0
    assert not (tmp_path / ".zart-lint-cache").exists()


def test_cache_dir_option_and_config(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": BUGGY}, 'cache-dir = "var/zl"\n')
    run_stats(tmp_path)
    assert list((tmp_path / "var" / "zl").glob("results-*.json"))
    assert (tmp_path / "var" / "zl" / ".gitignore").read_text().strip().endswith("*")
    run_stats(tmp_path, "--cache-dir", "elsewhere")
    assert list((tmp_path / "elsewhere").glob("results-*.json"))


def test_unwritable_cache_dir_is_not_an_error(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": BUGGY})
    (tmp_path / "blocker").write_text("a file, not a directory")
    out = invoke(["--cache-dir", "blocker/cache"], tmp_path)
    assert out.code == 1
    assert "error" not in out.stderr


def test_cache_round_trip(tmp_path: Path) -> None:
    fix = Fix("Add .named()", (Edit(1, 2, 1, 3, "x"), Edit(2, 1, 2, 1, "")))
    findings = [
        Finding("ZRT001", "msg é", "", 1, 2, 1, 5, fix),
        Finding("ZRT000", "m", "", 1, 1, 1, 1),
    ]
    sups = [Suppression(1, 5, 20, "noqa", ("ZRT001",), 12, 18, 20)]
    source = tmp_path / "p.py"
    source.write_text("x = 1\n")
    p = str(source)
    cache = Cache(tmp_path, tmp_path, "key")
    cache.put(p, Entry("d1", findings, sups, (1, 2, 3)))
    cache.put(str(tmp_path / "deleted.py"), Entry("d0", [], [], None))
    assert cache.save() is None
    again = Cache(tmp_path, tmp_path, "key")
    again.load()
    assert not again.has(str(tmp_path / "deleted.py"))  # files that are gone are dropped
    entry = again.get(p, (1, 2, 3))
    assert entry is not None
    assert entry.findings == findings and entry.findings[0].fix == fix
    assert entry.suppressions == sups
    assert again.get(p, (1, 2, 4)) is None  # stat differs: caller must hash
    assert again.get(p, None, "d1") is not None
    assert again.get(p, None, "d2") is None
    other = Cache(tmp_path, tmp_path, "another key")  # another version / options / index
    other.load()
    assert other.get(p, (1, 2, 3)) is None


def test_digest_is_content_based() -> None:
    assert digest(b"a") == digest(b"a") != digest(b"b")


# ------------------------------------------------------------------ the project index cache

OLD_NS = 1_600_000_000_000_000_000


def age(root: Path) -> None:
    """Give every file an old mtime: a fresh one is (rightly) not trusted by the cache."""
    for path in root.rglob("*.py"):
        os.utime(path, ns=(OLD_NS, OLD_NS))


def index_line(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out = invoke(["--verbose", "--output-format", "concise", *args], tmp_path)
    line = next(line for line in out.stderr.splitlines() if "index of" in line)
    return out.code, line, out.stdout


def test_project_index_is_cached_while_files_are_unchanged(tmp_path: Path) -> None:
    steps = (
        'from zart import step\n\n\n@step("process-item")\n'
        "async def process_item(x):\n    return x\n"
    )
    flows = (
        "from zart import durable\n\nfrom steps import process_item\n\n\n"
        '@durable("d")\nasync def d(xs):\n    for x in xs:\n        await process_item(x)\n'
    )
    write_project(tmp_path, {"steps.py": steps, "flows.py": flows})
    age(tmp_path)
    code, line, _ = index_line(tmp_path)
    assert code == 1 and "built" in line
    code, line, out = index_line(tmp_path)
    assert code == 1 and "loaded from the cache" in line and out.startswith("flows.py:9:")
    # Changing a step definition invalidates the cached index (and the results).
    (tmp_path / "steps.py").write_text(steps.replace('"process-item"', '"process-item-{x}"'))
    code, line, out = index_line(tmp_path)
    assert (code, out) == (0, "") and "built" in line
    # --no-cache neither reads nor writes it
    code, line, _ = index_line(tmp_path, "--no-cache")
    assert "built" in line


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch PWNED",))


def test_index_cache_cannot_run_code(tmp_path: Path) -> None:
    write_project(tmp_path, {"a.py": BUGGY})
    age(tmp_path)
    invoke([], tmp_path)
    [index_file] = (tmp_path / ".zart-lint-cache").glob("index-*.pickle")
    index_file.write_bytes(pickle.dumps(Evil()))
    code, line, _ = index_line(tmp_path)
    assert code == 1 and "built" in line
    assert not (tmp_path / "PWNED").exists()
