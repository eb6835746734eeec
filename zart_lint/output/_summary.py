"""What accompanies or replaces the findings: the summary and ``--statistics``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from zart_lint.core._finding import Finding
from zart_lint.core._rule_info import RuleInfo


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_lines(total: int, fixable: int, fixed: int, *, fix_mode: bool) -> list[str]:
    if total == 0 and fixed == 0:
        return ["All checks passed!"]
    lines: list[str] = []
    if fix_mode:
        lines.append(f"Found {plural(total + fixed, 'error')} ({fixed} fixed, {total} remaining).")
    else:
        lines.append(f"Found {plural(total, 'error')}.")
    if fixable and not fix_mode:
        lines.append(f"[*] {fixable} fixable with the `--fix` option.")
    return lines


def render_statistics(
    findings: Sequence[Finding], rules: Mapping[str, RuleInfo], *, as_json: bool
) -> str:
    counts = Counter(f.code for f in findings)
    fixable = {f.code for f in findings if f.fix}
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if as_json:
        import json  # not imported with the module: see _formats

        stats = [
            {
                "code": code,
                "name": rules[code].name if code in rules else None,
                "count": count,
                "fixable": code in fixable,
            }
            for code, count in ordered
        ]
        return json.dumps(stats, indent=2) + "\n"
    width = max((len(str(c)) for c in counts.values()), default=1)
    return "".join(
        f"{str(count).rjust(width)}\t{code}\t[{'*' if code in fixable else ' '}] "
        f"{rules[code].name if code in rules else ''}\n"
        for code, count in ordered
    )
