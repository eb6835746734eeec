"""``zart-lint --against REF``: breaking changes of durables and steps since a git revision
(ZRT009-ZRT012), in a temporary git repository made by each test."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from zart_lint.engine._against import compare_sources
from zart_lint.rules.zrt011_step_return_type_changed import compatible

from cli_helpers import invoke

STEPS_V1 = """\
from zart import step


@step("charge-{order}")
async def charge(order: str) -> int:
    return 1


@step("ship")
async def ship(order: str) -> None: ...


@step("receipt")
async def receipt(order: str) -> dict[str, int]:
    return {}


@step("price")
async def price(order: str) -> int:
    return 1


@step("audit")
async def audit(order: str) -> None: ...
"""

FLOWS_V1 = """\
import zart
from zart import durable

from shop.steps import charge, price, receipt, ship


@durable("order")
async def order(o: str) -> None:
    await charge(o)
    await zart.sleep("settle", 60)
    await ship(o)


@durable("refund")
async def refund(o: str) -> dict[str, int]:
    total = await receipt(o)
    await zart.sleep("wait", 5)
    await price(o)
    return total
"""

LEGACY_V1 = """\
from zart import durable

from shop.steps import audit


@durable("legacy")
async def legacy() -> None:
    await audit("x")
"""

# v2: the charge template changed, ship renamed to deliver, receipt's result made
# Optional (compatible), price's result changed to str; fraud and notify are new.
STEPS_V2 = (
    STEPS_V1.replace('@step("charge-{order}")', '@step("charge-{order}-v2")')
    .replace('@step("ship")\nasync def ship', '@step("deliver")\nasync def deliver')
    .replace("-> dict[str, int]:", "-> dict[str, int] | None:")
    .replace(
        "async def price(order: str) -> int:\n    return 1",
        'async def price(order: str) -> str:\n    return "1"',
    )
    + '\n\n@step("fraud")\nasync def fraud(order: str) -> None: ...\n'
    + '\n\n@step("notify")\nasync def notify(order: str) -> None: ...\n'
)

FLOWS_V2 = """\
import zart
from zart import durable

from shop.steps import audit, charge, deliver, fraud, notify, price, receipt


@durable("order")
async def order(o: str) -> None:
    await audit(o)
    if await zart.patched("fraud-check"):
        await fraud(o)
    await charge(o)
    await zart.sleep("settle", 60)
    await deliver(o)
    await notify(o)


@durable("refund")
async def refund(o: str) -> dict[str, int] | None:
    total = await receipt(o)
    await zart.sleep("wait", 5)
    await price(o)
    await notify(o)
    return total
"""

# (code, file, line) of every finding v2 must get against v1, and nothing else:
# the inserted audit, the changed charge template, ship renamed to deliver,
# price's return type, the removed durable "legacy".
EXPECTED = [
    ("ZRT009", "shop/flows.py", 12),
    ("ZRT009", "shop/flows.py", 14),
    ("ZRT010", "shop/flows.py", 9),
    ("ZRT011", "shop/steps.py", 19),
    ("ZRT012", "shop/legacy.py", 1),
]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def write(repo: Path, files: dict[str, str | None]) -> None:
    for relative, text in files.items():
        path = repo / relative
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding v1 of a small project, committed."""
    repo = tmp_path / "shop-repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "commit.gpgsign", "false")
    write(
        repo,
        {
            "pyproject.toml": '[project]\nname = "shop"\n',
            "shop/__init__.py": "",
            "shop/steps.py": STEPS_V1,
            "shop/flows.py": FLOWS_V1,
            "shop/legacy.py": LEGACY_V1,
        },
    )
    commit(repo, "v1")
    return repo


def to_v2(repo: Path) -> None:
    write(repo, {"shop/steps.py": STEPS_V2, "shop/flows.py": FLOWS_V2, "shop/legacy.py": None})


def found(repo: Path, *args: str) -> list[tuple[str, str, int]]:
    out = invoke(["--no-cache", "--output-format", "json", *args], repo)
    assert out.code in (0, 1), out.stderr
    rows = json.loads(out.stdout)
    return sorted(
        (row["code"], Path(row["filename"]).relative_to(repo).as_posix(), row["line"])
        for row in rows
    )


def test_v1_against_itself_is_clean(repo: Path) -> None:
    out = invoke(["--no-cache", "--against", "HEAD"], repo)
    assert out.code == 0, out.stdout + out.stderr
    assert "All checks passed!" in out.stdout


def test_unsafe_changes_are_flagged_and_safe_ones_pass(repo: Path) -> None:
    to_v2(repo)
    assert found(repo, "--against", "HEAD") == EXPECTED
    # Without the flag nothing is compared.
    assert found(repo) == []


def test_against_the_previous_commit(repo: Path) -> None:
    to_v2(repo)
    commit(repo, "v2")
    assert found(repo, "--against", "HEAD~1") == EXPECTED
    assert found(repo, "--against", "HEAD") == []
    # The repository is left as it was.
    assert git(repo, "status", "--porcelain") == ""


def test_messages_say_what_happens_and_how_to_make_it_safe(repo: Path) -> None:
    to_v2(repo)
    out = invoke(["--no-cache", "--output-format", "concise", "--against", "HEAD"], repo)
    assert out.code == 1
    lines = out.stdout.splitlines()
    assert len(lines) == len(EXPECTED)
    inserted = next(line for line in lines if "ZRT010" in line)
    assert inserted.startswith("shop/flows.py:9:11: ZRT010 ")
    assert '"charge-{order}"' in inserted and "`diverged`" in inserted
    assert 'zart.patched("<id>")' in inserted
    template = next(line for line in lines if ":12:" in line)
    assert '.named("charge-{order}")' in template
    removed = next(line for line in lines if "ZRT012" in line)
    assert "orphaned" in removed and '"legacy"' in removed
    returned = next(line for line in lines if "ZRT011" in line)
    assert "SerializationError" in returned and "`str | int`" in returned


def test_other_formats_and_selection(repo: Path) -> None:
    to_v2(repo)
    sarif = invoke(["--no-cache", "--output-format", "sarif", "--against", "HEAD"], repo)
    results = json.loads(sarif.stdout)["runs"][0]["results"]
    assert sorted(r["ruleId"] for r in results) == sorted(code for code, _, _ in EXPECTED)
    full = invoke(["--no-cache", "--against", "HEAD"], repo)  # a deleted file has no source
    assert full.code == 1 and "shop/legacy.py:1:1: ZRT012" in full.stdout
    assert found(repo, "--against", "HEAD", "--ignore", "ZRT009,ZRT012") == [
        e for e in EXPECTED if e[0] not in ("ZRT009", "ZRT012")
    ]
    assert found(repo, "--against", "HEAD", "shop/steps.py") == [EXPECTED[3]]


def test_unknown_ref_and_no_repository_are_usage_errors(repo: Path, tmp_path: Path) -> None:
    out = invoke(["--against", "no-such-branch"], repo)
    assert out.code == 2
    assert "--against no-such-branch: unknown revision" in out.stderr
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    (elsewhere / "flows.py").write_text("import zart\n", encoding="utf-8")
    out = invoke(["--against", "HEAD", "flows.py"], elsewhere)
    assert out.code == 2
    assert "not in a git repository" in out.stderr


def test_loops_and_branches_are_approximated_in_source_order() -> None:
    old = textwrap.dedent(
        """
        import zart
        from zart import durable, step

        @step("item-{i}")
        async def item(i: int) -> None: ...

        @durable("batch")
        async def batch(n: int, fast: bool) -> None:
            for i in range(n):
                await item(i)
            if fast:
                await zart.sleep("short", 1)
            else:
                await zart.sleep("long", 60)
        """
    )
    assert compare_sources({"f.py": old}, {"f.py": old}) == []
    swapped = old.replace('"short", 1', '"long", 1').replace('"long", 60', '"short", 60')
    # Swapped calls are a reorder: the one moved ahead is inserted, its old place removed.
    reordered = compare_sources({"f.py": old}, {"f.py": swapped})
    assert sorted(f.code for f in reordered) == ["ZRT009", "ZRT010"]
    # A call in a loop counts once: looping over it more or less changes nothing here.
    looped = old.replace("for i in range(n):", "for i in range(2 * n):")
    assert compare_sources({"f.py": old}, {"f.py": looped}) == []


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ("int", "int", True),
        ("int", "int | None", True),
        ("int", "Optional[int]", True),
        ("int", "typing.Union[str, int]", True),
        ("list[int]", "list[int] | None", True),
        ("int", "Any", True),
        ("int", "str", False),
        ("int | None", "int", False),
        ("Optional[int]", "int", False),
        ("dict[str, int]", "dict[str, str]", False),
    ],
)
def test_return_annotation_compatibility(old: str, new: str, ok: bool) -> None:
    assert compatible(old, new) is ok
