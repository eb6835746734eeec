"""Recall and precision on a realistic multi-package project (fixtures/corpus).

Every line where a finding is expected carries ``# expect: ZRTnnn``; every other
line of the project must stay silent. The project exercises what zart-lint
follows: assignment aliases of steps and of zart's decorators, re-exports
through ``__init__`` (star imports included, and a 15-layer star chain),
``functools.partial``, static / class / instance method steps, ``.format()`` and
``%`` names, loop variables rebound to a constant, early exits, a real package
named ``build``, and a file libcst cannot parse.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cli_helpers import PYPROJECT, invoke

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
MARK = re.compile(r"# expect: (ZRT\d{3})")

Key = tuple[str, int, str]


def expected_findings(root: Path) -> set[Key]:
    found: set[Key] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found.update((rel, number, code) for code in MARK.findall(line))
    return found


def reported(root: Path, *args: str) -> tuple[set[Key], str]:
    out = invoke(["--output-format", "concise", "--exit-zero", *args], root)
    assert out.exception is None and out.code == 0, out.stderr
    found: set[Key] = set()
    for line in out.stdout.splitlines():
        path, number, _column, rest = line.split(":", 3)
        found.add((path, int(number), rest.split()[0]))
    return found, out.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "shop"
    shutil.copytree(CORPUS, root)
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    return root


def score(found: set[Key], expected: set[Key]) -> str:
    hits = len(found & expected)
    recall = hits / len(expected)
    precision = hits / len(found) if found else 1.0
    return (
        f"recall {recall:.1%} ({hits}/{len(expected)}), precision {precision:.1%} "
        f"({hits}/{len(found)}); missed {sorted(expected - found)}; "
        f"false positives {sorted(found - expected)}"
    )


def test_recall_and_precision_on_the_corpus(corpus: Path) -> None:
    expected = expected_findings(corpus)
    assert len(expected) >= 15
    found, stderr = reported(corpus, "--no-cache", ".")
    print(f"\ncorpus: {score(found, expected)}")
    assert found == expected, score(found, expected)
    # The file libcst cannot parse is reported as not analysed, never as a syntax error.
    assert "shopflow/compat.py: cannot analyse this file" in stderr


def test_the_cached_run_agrees(corpus: Path) -> None:
    expected = expected_findings(corpus)
    cache = ["--cache-dir", str(corpus.parent / "cache")]
    assert reported(corpus, *cache, ".")[0] == expected  # cold, then warm
    assert reported(corpus, *cache, ".")[0] == expected


@pytest.mark.parametrize(
    "relative",
    ["shopflow/flows/checkout.py", "shopflow/flows/maintenance.py", "ops/jobs.py"],
)
def test_one_file_named_alone_finds_the_same(corpus: Path, relative: str) -> None:
    """The pre-commit case: only the linted file is named, the index reads what it imports."""
    expected = {key for key in expected_findings(corpus) if key[0] == relative}
    assert expected
    assert reported(corpus, "--no-cache", relative)[0] == expected
