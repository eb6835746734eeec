"""The ``zart-lint`` command line.

Exit codes: 0 no findings, 1 findings (or, with ``--diff``, changes to make),
2 usage, configuration or internal error. An unexpected exception prints one
line and a hint to report it; the traceback only with ``--verbose``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from zart_lint.core._rule_info import UNUSED_SUPPRESSION, RuleInfo
from zart_lint.core._version import __version__
from zart_lint.output import FORMATS
from zart_lint.output._summary import plural
from zart_lint.project._config import ConfigError, RuleSelection, check_selector

if TYPE_CHECKING:
    from zart_lint.core._finding import Finding
    from zart_lint.engine._against import Revision
    from zart_lint.engine._checker import FileOutcome, FileTask
    from zart_lint.engine._runner import RootFinder, RunResult
    from zart_lint.output import Located, OutputFormat
    from zart_lint.project._config import Settings
    from zart_lint.project._discovery import PathMatcher

PROG = "zart-lint"
REPORT_HINT = (
    "This is a bug in zart-lint: please report it with the command you ran and, "
    "if you can, the file involved (run again with --verbose to see the traceback)."
)


def _split_codes(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(code.strip() for value in values for code in value.split(",") if code.strip())


@dataclass
class Options:
    paths: tuple[str, ...]
    fix: bool
    diff: bool
    select: tuple[str, ...]
    extend_select: tuple[str, ...]
    ignore: tuple[str, ...]
    exclude: tuple[str, ...]
    extend_exclude: tuple[str, ...]
    force_exclude: bool
    config: str | None
    isolated: bool
    output_format: str
    output_file: str | None
    statistics: bool
    show_source: bool
    exit_zero: bool
    exit_non_zero_on_fix: bool
    quiet: bool
    verbose: bool
    stdin_filename: str | None
    no_cache: bool
    cache_dir: str | None
    jobs: int | None
    report_unused_suppressions: bool
    explain: str | None
    list_rules: bool
    show_files: bool
    strict: bool = False
    against: str | None = None
    errors: list[str] = field(default_factory=list)


# long-function: the decorators are the command's options, one each; the body is short.
@click.command(
    name=PROG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--fix", is_flag=True, help="Apply the safe fixes in place, then report what is left."
)
@click.option(
    "--diff",
    is_flag=True,
    help="Print the changes --fix would make, write nothing (exit 1 if any).",
)
@click.option("--select", multiple=True, metavar="CODES", help="Rules to enable (replaces config).")
@click.option(
    "--extend-select", multiple=True, metavar="CODES", help="Rules to enable in addition."
)
@click.option("--ignore", multiple=True, metavar="CODES", help="Rules to disable.")
@click.option("--exclude", multiple=True, metavar="GLOBS", help="Replace the excluded paths.")
@click.option("--extend-exclude", multiple=True, metavar="GLOBS", help="Exclude more paths.")
@click.option(
    "--force-exclude", is_flag=True, help="Apply excludes to paths named on the command line too."
)
@click.option("--config", type=click.Path(), help="Use this config file, not the nearest one.")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option(
    "--output-format",
    type=click.Choice(list(FORMATS)),
    default="full",
    show_default=True,
    envvar="ZART_LINT_OUTPUT_FORMAT",
    show_envvar=True,
    help="How findings are printed.",
)
@click.option("-o", "--output-file", type=click.Path(), help="Write the report to this file.")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule.")
@click.option(
    "--show-source/--no-show-source", default=True, help="Show the source line in full output."
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option(
    "--exit-non-zero-on-fix", is_flag=True, help="Exit 1 when --fix changed files, even if clean."
)
@click.option("-q", "--quiet", is_flag=True, help="Print findings only: no summary, no notes.")
@click.option("-v", "--verbose", is_flag=True, help="Explain what is done; show tracebacks.")
@click.option("--stdin-filename", help="The name of the file read from stdin ('-').")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--cache-dir", type=click.Path(), envvar="ZART_LINT_CACHE_DIR", help="Cache location."
)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: CPU count)."
)
@click.option(
    "--report-unused-suppressions",
    is_flag=True,
    help="Report zart-lint suppression comments that suppress nothing (ZRT100).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Fail (exit 1) when a file cannot be analysed (valid Python libcst cannot parse).",
)
@click.option(
    "--against",
    metavar="REF",
    help="Also report breaking changes of durables and steps since this git revision.",
)
@click.option("--explain", metavar="CODE", help="Explain a rule and exit.")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@click.option("--show-files", is_flag=True, help="List the files that would be checked and exit.")
@click.version_option(__version__, "-V", "--version", prog_name=PROG)
def cli(**kwargs: Any) -> None:
    """Check zart durable functions for the silent cached-result bug and friends.

    PATHS are files or directories (default: the current directory); '-' reads
    the source from stdin.
    """
    opts = Options(**kwargs)
    ctx = click.get_current_context()
    try:
        code = _main(opts)
    except ConfigError as exc:
        click.echo(f"{PROG}: error: {exc}", err=True)
        code = 2
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except BrokenPipeError:
        # The reader went away (`zart-lint --show-files . | head -1`): stop quietly, as
        # ruff does, with the status a process killed by SIGPIPE has.
        _silence_stdout()
        code = 141
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted", err=True)
        code = 130
    except Exception as exc:
        # Not imported up front: it costs more than the rest of --help (multiprocessing).
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(exc, BrokenProcessPool):
            _internal_error(opts, f"a worker process died ({exc})")
        else:
            _internal_error(opts, f"{type(exc).__name__}: {exc}")
        code = 2
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        code = 141
    ctx.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (tests): nothing will be flushed to a pipe


def _internal_error(opts: Options, message: str) -> None:
    if opts.verbose:
        click.echo(traceback.format_exc().rstrip(), err=True)
    click.echo(f"{PROG}: internal error: {message}", err=True)
    click.echo(REPORT_HINT, err=True)


def main() -> None:
    cli(prog_name=PROG)


# --------------------------------------------------------------------------- the run


def _main(opts: Options) -> int:
    # Imported here so that --help and --version do not pay for importing the rules.
    from zart_lint.rules import RULES

    known = tuple(sorted(RULES))
    if opts.explain is not None:
        return _explain(opts.explain, RULES)
    if opts.list_rules:
        for code in known:
            rule = RULES[code]
            fix = "[*]" if rule.fixable else "   "
            click.echo(f"{code} {fix} {rule.name}: {rule.summary}")
        return 0
    if opts.fix and opts.diff:
        raise click.UsageError("--fix and --diff cannot be combined: --diff only shows the fixes.")

    selection = RuleSelection(
        select=_check_codes("--select", opts.select, known) if opts.select else None,
        extend_select=_check_codes("--extend-select", opts.extend_select, known),
        ignore=_check_codes("--ignore", opts.ignore, known),
    )
    return _Run(opts, known, selection).execute()


def _check_codes(option: str, values: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    codes = _split_codes(values)
    for code in codes:
        problem = check_selector(code, known, allow=(UNUSED_SUPPRESSION.code,))
        if problem:
            raise click.BadParameter(problem, param_hint=f"'{option}'")
    return codes


def _explain(code: str, rules: Mapping[str, RuleInfo]) -> int:
    rule = rules.get(code.upper())
    if rule is None:
        raise click.BadParameter(
            f"unknown rule {code!r} (see --list-rules)", param_hint="'--explain'"
        )
    click.echo(f"{rule.code} ({rule.name})\n\n{rule.summary}\n\n{rule.explanation.strip()}")
    if rule.fixable:
        click.echo("\nFix: available with --fix (see --diff for a preview).")
    return 0


def _find_repo_root(start: Path, fallback: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return fallback


class _Run:
    def __init__(self, opts: Options, known: tuple[str, ...], selection: RuleSelection) -> None:
        self.opts = opts
        self.known = known
        self.selection = selection
        self.cwd = Path.cwd()
        self.errors: list[str] = []
        self.skipped: list[str] = []  # build output directories the walk left out
        self.unanalysed = 0  # files that could not be analysed (see --strict)

    def execute(self) -> int:
        from zart_lint.engine import _runner
        from zart_lint.engine._checker import Mode
        from zart_lint.project._discovery import PathMatcher

        opts = self.opts
        settings = self._settings()
        self._verbose(f"config: {settings.config_path or '(none: defaults)'}")
        self._verbose(f"project root: {settings.root}")
        self._verbose(f"rules: {', '.join(sorted(settings.enabled)) or '(none)'}")

        excludes = PathMatcher(settings.exclude, settings.root, settings.build_output)
        stdin_mode = opts.paths == ("-",) or (not opts.paths and opts.stdin_filename is not None)
        if "-" in opts.paths and not stdin_mode:
            raise click.UsageError("'-' (stdin) cannot be combined with other paths.")
        revision = self._revision(stdin_mode)
        if stdin_mode:
            stdin_task = self._stdin_task(excludes)
            if stdin_task is None:
                return 0
            tasks = [stdin_task]
        else:
            tasks = self._file_tasks(excludes)
            if opts.show_files:
                for task in sorted(tasks, key=lambda t: t.display):
                    click.echo(task.display)
                self._skipped_note(force=True)
                return self._exit_code(0, 0, 0)
            self._skipped_note(force=opts.verbose)
            if not tasks and not self.errors and not opts.quiet:
                click.echo(
                    f"{PROG}: warning: no Python files found under the given paths", err=True
                )

        mode = Mode(fix=opts.fix, diff=opts.diff, report_unused=settings.report_unused_suppressions)
        result = _runner.run(
            tasks,
            settings,
            frozenset(self.known),
            mode,
            use_cache=not opts.no_cache,
            jobs=opts.jobs or os.cpu_count() or 1,
        )
        self._verbose_stats(result)
        for outcome in result.outcomes:
            self._outcome_problems(outcome)
        reporter = _Reporter(self, settings, result, stdin_mode)
        if revision is not None:
            reporter.extra = self._against(revision, settings, excludes, tasks)
        return reporter.emit()

    def _revision(self, stdin_mode: bool) -> Revision | None:
        """The git revision of --against (checked before anything runs), or None."""
        from zart_lint.engine._against import Revision
        from zart_lint.project._git import GitError

        ref = self.opts.against
        if ref is None:
            return None
        if stdin_mode or self.opts.fix or self.opts.diff:
            raise click.UsageError("--against cannot be combined with stdin, --fix or --diff.")
        try:
            return Revision(ref, self.cwd)
        except GitError as exc:
            raise ConfigError(f"--against {ref}: {exc}") from None

    def _against(
        self, revision: Revision, settings: Settings, excludes: PathMatcher, tasks: list[FileTask]
    ) -> list[Located]:
        """The --against findings, with rule selection and per-file-ignores applied."""
        from zart_lint.engine._runner import rule_options
        from zart_lint.output import Located
        from zart_lint.project._discovery import PathMatcher, display_path

        found = revision.findings(
            [self.cwd / p for p in (self.opts.paths or (".",))],
            [Path(task.path) for task in tasks],
            settings.root,
            rule_options(settings),
            excludes.matches_path_or_parent,
        )
        ignores = [
            (PathMatcher([p], settings.root), codes) for p, codes in settings.per_file_ignores
        ]
        items: list[Located] = []
        for finding in found:
            path = revision.repo / finding.path
            ignored = {
                c
                for matcher, codes in ignores
                if matcher.matches_path_or_parent(path)
                for c in codes
            }
            if finding.code in settings.enabled and finding.code not in ignored:
                shown = replace(finding, path=display_path(path, self.cwd))
                items.append(Located(shown, str(path), finding.path))
        return items

    def _settings(self) -> Settings:
        """The configuration file's settings, with the command line's on top."""
        from zart_lint.project import _config

        opts = self.opts
        file_config = _config.load_file_config(
            self.cwd,
            self.known,
            config_path=Path(opts.config) if opts.config else None,
            isolated=opts.isolated,
        )
        if opts.exclude:
            file_config = replace(file_config, exclude=_split_codes(opts.exclude))
        if opts.extend_exclude:
            file_config = replace(
                file_config,
                extend_exclude=(*file_config.extend_exclude, *_split_codes(opts.extend_exclude)),
            )
        return _config.build_settings(
            file_config,
            self.selection,
            self.known,
            cache_dir=(self.cwd / opts.cache_dir) if opts.cache_dir else None,
            report_unused_suppressions=opts.report_unused_suppressions,
        )

    def _task(
        self,
        path: Path,
        display: str,
        excludes: PathMatcher,
        root_of: RootFinder,
        stdin: bytes | None = None,
        *,
        explicit: bool = False,
    ) -> FileTask:
        from zart_lint.engine._checker import FileTask

        root = root_of(path)
        return FileTask(
            path=str(path),
            display=display,
            rel=excludes.relative(path),
            root=str(root) if root else None,
            stdin=stdin,
            explicit=explicit or stdin is not None,
        )

    def _stdin_task(self, excludes: PathMatcher) -> FileTask | None:
        """The task for '-' (None: the named file is excluded, there is nothing to do)."""
        from zart_lint.engine._runner import RootFinder

        opts = self.opts
        name = opts.stdin_filename
        path = Path(os.path.normpath(self.cwd / name)) if name else self.cwd / "-"
        if name and opts.force_exclude and excludes.matches_path_or_parent(path):
            self._verbose(f"{name} is excluded (--force-exclude): not checked")
            if opts.fix:
                sys.stdout.buffer.write(sys.stdin.buffer.read())
            return None
        return self._task(path, name or "-", excludes, RootFinder(), sys.stdin.buffer.read())

    def _file_tasks(self, excludes: PathMatcher) -> list[FileTask]:
        from zart_lint.engine._runner import RootFinder
        from zart_lint.project._discovery import discover, display_path

        found = discover(
            [Path(p) for p in (self.opts.paths or (".",))],
            self.cwd,
            excludes,
            force_exclude=self.opts.force_exclude,
        )
        for missing in found.missing:
            self.errors.append(f"{missing}: no such file or directory")
        self.skipped = [display_path(path, self.cwd) + "/" for path in found.skipped]
        root_of = RootFinder()
        return [
            self._task(
                path,
                display_path(path, self.cwd),
                excludes,
                root_of,
                explicit=path in found.explicit,
            )
            for path in found.files
        ]

    def _skipped_note(self, *, force: bool) -> None:
        """Say which build output directories the walk left out (never silently)."""
        if self.skipped and force and not self.opts.quiet:
            click.echo(
                f"{PROG}: note: skipped build output (not a package): {', '.join(self.skipped)}",
                err=True,
            )

    def _verbose_stats(self, result: RunResult) -> None:
        stats = result.stats
        self._verbose(
            f"checked {stats.files} files (cached: {stats.cached}, parsed: {stats.parsed}, "
            f"skipped: {stats.skipped}) in {stats.lint_seconds:.2f}s; "
            f"index of {', '.join(stats.roots) or 'nothing'} "
            f"in {stats.index_seconds:.2f}s"
        )
        for note in stats.notes:
            self._verbose(note)

    def _outcome_problems(self, outcome: FileOutcome) -> None:
        """Record a file's error; warn about fixes that were not applied, and about a file
        that could not be analysed (an error with --strict)."""
        if outcome.notice:
            self.unanalysed += 1
            if self.opts.strict:
                click.echo(f"{PROG}: error: {outcome.task.display}: {outcome.notice}", err=True)
            elif not self.opts.quiet:
                click.echo(
                    f"{PROG}: warning: {outcome.task.display}: {outcome.notice} "
                    "(--strict makes this an error)",
                    err=True,
                )
        if outcome.error:
            self.errors.append(outcome.error)
            if self.opts.verbose and outcome.error_detail:
                click.echo(outcome.error_detail.rstrip(), err=True)
        if outcome.rejected:
            click.echo(
                f"{PROG}: warning: {outcome.task.display}: not applying "
                f"{len(outcome.rejected)} fix(es): the result would not parse. "
                "Please report this.",
                err=True,
            )
        if not outcome.converged:
            click.echo(
                f"{PROG}: warning: {outcome.task.display}: fixes did not converge; "
                "the file was fixed as far as possible. Please report this.",
                err=True,
            )

    def _verbose(self, message: str) -> None:
        if self.opts.verbose:
            click.echo(f"{PROG}: {message}", err=True)

    def _exit_code(self, remaining: int, changes: int, fixed: int) -> int:
        for error in self.errors:
            click.echo(f"{PROG}: error: {error}", err=True)
        if any(e.startswith("internal error") for e in self.errors):
            click.echo(REPORT_HINT, err=True)
        if self.errors:
            return 2
        if self.opts.exit_zero:
            return 0
        if remaining or changes or (self.opts.strict and self.unanalysed):
            return 1
        if fixed and self.opts.exit_non_zero_on_fix:
            return 1
        return 0


class _Reporter:
    """Turns a run result into output streams and an exit code."""

    def __init__(self, run: _Run, settings: Settings, result: RunResult, stdin_mode: bool) -> None:
        self.run = run
        self.opts = run.opts
        self.settings = settings
        self.result = result
        self.stdin_mode = stdin_mode
        self._texts: dict[str, list[str]] = {}
        self._sources: dict[str, str] = {}
        self.extra: list[Located] = []  # the --against findings

    def lines_of(self, item: Located) -> list[str]:
        from zart_lint.engine._checker import decode
        from zart_lint.fix._apply import split_lines

        key = item.abs_path
        if key not in self._texts:
            if not self._sources:
                self._sources = {_abs_name(o): o.source for o in self.result.outcomes if o.source}
            text = self._sources.get(key)
            if text is None:
                try:
                    with open(key, "rb") as fh:
                        text = decode(fh.read())[0]
                except OSError:
                    text = None
            self._texts[key] = split_lines(text or "")
        return self._texts[key]

    def emit(self) -> int:
        from zart_lint.output import Located

        opts = self.opts
        outcomes = self.result.outcomes
        if opts.diff:
            return self._emit_diff(outcomes)
        repo_root = _find_repo_root(self.run.cwd, self.settings.root)
        items = [
            Located(f, _abs_name(o), _repo_relative(o, repo_root))
            for o in outcomes
            for f in o.findings
        ]
        items += self.extra
        report_stream = self._report_stream(outcomes)
        fmt = FORMATS[opts.output_format]
        color = (
            opts.output_file is None
            and fmt.color
            and report_stream.isatty()
            and "NO_COLOR" not in os.environ
        )
        report = self._render(fmt, items, repo_root, color)
        findings = [i.finding for i in items]
        fixed = sum(len(o.fixed) for o in outcomes)
        notes = [] if opts.quiet else self._notes(fmt, findings, fixed)
        # Only the full format carries notes in its stream; the others stay
        # machine-readable (concise: exactly one line per finding).
        notes_in_report = (fmt.notes_in_report and not opts.statistics) or (
            opts.statistics and not fmt.json_statistics
        )
        if notes_in_report:
            report += "".join(f"{n}\n" for n in notes)
            notes = []
        self._write(report, report_stream, color)
        for note in notes:
            click.echo(note, err=True)
        return self.run._exit_code(len(findings), 0, fixed)

    def _report_stream(self, outcomes: Sequence[FileOutcome]) -> IO[str]:
        """stdout, unless stdout carries the fixed code (stdin + --fix): then stderr."""
        if not (self.stdin_mode and self.opts.fix):
            return sys.stdout
        fixed_source = next((o.fixed_source for o in outcomes if o.fixed_source), None)
        if fixed_source is None and outcomes and outcomes[0].task.stdin is not None:
            fixed_source = outcomes[0].task.stdin.decode("utf-8", "replace")
        sys.stdout.write(fixed_source or "")
        sys.stdout.flush()
        return sys.stderr

    def _render(self, fmt: OutputFormat, items: list[Located], repo_root: Path, color: bool) -> str:
        from zart_lint.output import RenderInput, render_statistics
        from zart_lint.rules import RULES

        rules: dict[str, RuleInfo] = dict(RULES)
        if self.settings.report_unused_suppressions:
            rules[UNUSED_SUPPRESSION.code] = UNUSED_SUPPRESSION
        if self.opts.statistics:
            findings = [i.finding for i in items]
            return render_statistics(findings, rules, as_json=fmt.json_statistics)
        request = RenderInput(
            items, rules, self.lines_of, repo_root, show_source=self.opts.show_source, color=color
        )
        return fmt.render(request)

    def _notes(self, fmt: OutputFormat, findings: list[Finding], fixed: int) -> list[str]:
        """What was fixed, then the summary (for people: json, sarif, github get none)."""
        from zart_lint.output import summary_lines

        notes = self._fix_notes(self.result.outcomes)
        if fmt.for_people or self.opts.statistics:
            fixable = sum(1 for f in findings if f.fix)
            summary = summary_lines(len(findings), fixable, fixed, fix_mode=self.opts.fix)
            failed = self.run.errors or (self.opts.strict and self.run.unanalysed)
            if not (failed and summary == ["All checks passed!"]):
                notes += summary  # "passed" would be a lie next to an error
        return notes

    def _write(self, report: str, stream: IO[str], color: bool) -> None:
        if self.opts.output_file:
            path = Path(self.opts.output_file)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(report, encoding="utf-8")
            except OSError as exc:
                self.run.errors.append(f"cannot write {path}: {exc.strerror or exc}")
        else:
            click.echo(report, file=stream, nl=False, color=color or None)

    def _fix_notes(self, outcomes: Sequence[FileOutcome]) -> list[str]:
        notes = []
        for o in outcomes:
            if not o.fixed:
                continue
            notes.append(f"Fixed {plural(len(o.fixed), 'error')} in {o.task.display}:")
            for f in sorted(o.fixed, key=lambda f: (f.line, f.column)):
                notes.append(f"  - {f.code} {f.fix.message if f.fix else ''} (line {f.line})")
        return notes

    def _emit_diff(self, outcomes: Sequence[FileOutcome]) -> int:
        diffs = [o.diff for o in outcomes if o.diff]
        would_fix = sum(len(o.fixed) for o in outcomes)
        output = "".join(diffs)
        if self.opts.output_file:
            Path(self.opts.output_file).write_text(output, encoding="utf-8")
        else:
            click.echo(output, nl=False)
        if not self.opts.quiet:
            if would_fix:
                click.echo(f"Would fix {plural(would_fix, 'error')}.", err=True)
            else:
                click.echo("No fixes available.", err=True)
        return self.run._exit_code(0, len(diffs), 0)


def _abs_name(outcome: FileOutcome) -> str:
    if outcome.task.stdin is not None and outcome.task.display == "-":
        return "-"
    return str(outcome.task.path)


def _repo_relative(outcome: FileOutcome, repo_root: Path) -> str | None:
    if outcome.task.stdin is not None and outcome.task.display == "-":
        return None
    try:
        return Path(outcome.task.path).relative_to(repo_root).as_posix()
    except ValueError:
        return None
