"""The ``zart`` command: run, status, list, steps, cancel, send-event, worker, db upgrade.

Most cases run in-process through click's CliRunner; a few run the real
``python -m zart`` to check what a shell user sees (exit codes, stderr, no traceback).
The target module is tests/cli_app.py.
"""

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from zart.cli import main

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_URLS = [
    pytest.param("sqlite:////nonexistent-dir/x.db", id="sqlite-missing-dir"),
    pytest.param("postgresql+psycopg://postgres@127.0.0.1:1/zart", id="postgres-closed-port"),
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`zart worker` raises the "zart" logger to INFO; keep that out of other tests."""
    logger = logging.getLogger("zart")
    level = logger.level
    yield
    logger.setLevel(level)


def cli(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database-url", db_url, *args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def assert_usage_error(result: Result, *fragments: str) -> str:
    """Exit 2, one line on stderr starting with "zart: error:", nothing else raised."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("zart: error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def child_environment(db_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ZART_DATABASE_URL", None)
    if db_url is not None:
        env["ZART_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


def zart_process(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zart", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_process_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("zart: error: "), lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --------------------------------------------------------------------------- real process


def test_python_m_zart_run_prints_the_result(child_env: dict[str, str], tmp_path: Path) -> None:
    tmp_path = tmp_path / "cwd"
    tmp_path.mkdir()
    proc = zart_process(
        child_env, tmp_path, "run", "cli_app:greet", "--input", '"ana"', "--id", "g1"
    )
    assert proc.returncode == 0, proc.stderr
    assert "g1" in proc.stdout
    assert '"hello ANA"' in proc.stdout
    assert "Traceback" not in proc.stderr

    proc = zart_process(child_env, tmp_path, "run", "cli_app:greet", "--id", "g1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"id": "g1", "status": "completed", "result": "hello ANA"}
    assert not (tmp_path / "zart.db").exists()  # the database URL came from the environment


def test_python_m_zart_errors_are_one_line(tmp_path: Path, sqlite_url: str) -> None:
    env = child_environment(sqlite_url)
    assert_process_error(
        zart_process(env, tmp_path, "run", "no_such_module_xyz:flow"), "no_such_module_xyz"
    )
    assert_process_error(zart_process(env, tmp_path, "status", "nope"), "nope")


@pytest.mark.parametrize("url", UNREACHABLE_URLS)
def test_python_m_zart_unreachable_database(url: str, tmp_path: Path) -> None:
    proc = zart_process(child_environment(), tmp_path, "--database-url", url, "status", "x")
    assert_process_error(proc)


@pytest.mark.parametrize("url", UNREACHABLE_URLS)
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["status", "x"], id="status"),
        pytest.param(["list"], id="list"),
        pytest.param(["steps", "x"], id="steps"),
        pytest.param(["cancel", "x"], id="cancel"),
        pytest.param(["send-event", "x", "e"], id="send-event"),
        pytest.param(["run", "cli_app:noargs"], id="run"),
        pytest.param(["run", "cli_app:noargs", "--no-wait"], id="run-no-wait"),
        pytest.param(["db", "upgrade"], id="db-upgrade"),
    ],
)
def test_unreachable_database(url: str, args: list[str]) -> None:
    assert_usage_error(cli(url, *args))


@pytest.mark.parametrize("url", UNREACHABLE_URLS)
def test_unreachable_database_from_environment(url: str) -> None:
    result = CliRunner().invoke(main, ["list"], env={"ZART_DATABASE_URL": url})
    assert_usage_error(result)


# --------------------------------------------------------------------------- run


def test_run_text_and_json_output(db_url: str) -> None:
    out = ok(cli(db_url, "run", "cli_app:greet", "--input", '"bo"', "--id", "run-1"))
    assert out.splitlines()[0] == "execution run-1 completed"
    assert json.loads("\n".join(out.splitlines()[1:])) == "hello BO"

    out = ok(cli(db_url, "run", "cli_app:add", "--input", "[2, 3]", "--json"))
    data = json.loads(out)
    assert data["status"] == "completed" and data["result"] == 5
    assert isinstance(data["id"], str) and data["id"]


@pytest.mark.parametrize(
    ("target", "input_json", "expected"),
    [
        pytest.param("cli_app:add", "[1, 2]", 3, id="array"),
        pytest.param("cli_app:add", '{"a": 4, "b": 5}', 9, id="object"),
        pytest.param("cli_app:greet", '"cy"', "hello CY", id="single-value"),
        pytest.param(
            "cli_app:total",
            '[[{"sku": "a", "price": "1.10", "qty": 3}, {"sku": "b", "price": "0.05"}]]',
            "3.35",
            id="typed-dataclasses",
        ),
        pytest.param("cli_app:noargs", None, {"answer": 42}, id="no-input"),
    ],
)
def test_run_input_forms(
    db_url: str, target: str, input_json: str | None, expected: object
) -> None:
    args = ["run", target, "--json"]
    if input_json is not None:
        args += ["--input", input_json]
    assert json.loads(ok(cli(db_url, *args)))["result"] == expected


def test_run_existing_id_returns_stored_result(db_url: str) -> None:
    ok(
        cli(
            db_url, "run", "cli_app:total", "--input", '[[{"sku": "a", "price": "2"}]]', "--id", "t"
        )
    )
    # Without --input: the stored execution's result; with another input: still the stored one.
    assert (
        json.loads(ok(cli(db_url, "run", "cli_app:total", "--id", "t", "--json")))["result"] == "2"
    )
    again = cli(db_url, "run", "cli_app:total", "--input", "[[]]", "--id", "t", "--json")
    assert json.loads(ok(again))["result"] == "2"
    steps = json.loads(ok(cli(db_url, "steps", "t", "--json")))
    assert [s["name"] for s in steps] == ["cli-app-line-0"]


def test_run_existing_id_of_another_durable(db_url: str) -> None:
    ok(cli(db_url, "run", "cli_app:noargs", "--id", "mine"))
    assert_usage_error(cli(db_url, "run", "cli_app:greet", "--id", "mine"), "cli-app-noargs")
    assert_usage_error(
        cli(db_url, "run", "cli_app:greet", "--input", '"x"', "--id", "mine"), "cli-app-noargs"
    )


def test_run_no_wait_existing_id_of_another_durable(db_url: str) -> None:
    ok(cli(db_url, "run", "cli_app:greet", "--input", '"x"', "--id", "theirs", "--no-wait"))
    for extra in ([], ["--input", "[1, 2]"]):
        result = cli(db_url, "run", "cli_app:add", "--id", "theirs", "--no-wait", *extra)
        assert_usage_error(result, "'theirs'", "cli-app-greet", "another id")
    # The same durable, no input: it attaches to the stored execution.
    out = ok(cli(db_url, "run", "cli_app:greet", "--id", "theirs", "--no-wait", "--json"))
    assert json.loads(out) == {"id": "theirs", "status": "pending"}
    status = json.loads(ok(cli(db_url, "status", "theirs", "--json")))
    assert status["durable_name"] == "cli-app-greet"


def test_run_failed_execution(db_url: str) -> None:
    result = cli(db_url, "run", "cli_app:fail", "--id", "f1")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "f1" in lines[0] and "cli failure on purpose" in lines[0]

    result = cli(db_url, "run", "cli_app:fail", "--id", "f1", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["id"] == "f1" and data["status"] == "failed"
    assert "cli failure on purpose" in data["error"]


def test_run_no_wait_then_worker(db_url: str) -> None:
    eid = ok(cli(db_url, "run", "cli_app:add", "--input", "[20, 22]", "--no-wait")).strip()
    assert eid
    out = ok(
        cli(db_url, "run", "cli_app:greet", "--input", '"w"', "--id", "w2", "--no-wait", "--json")
    )
    assert json.loads(out) == {"id": "w2", "status": "pending"}
    assert json.loads(ok(cli(db_url, "status", eid, "--json")))["status"] == "pending"

    ok(cli(db_url, "worker", "cli_app", "--until-idle", "--poll-interval", "0.05"))

    for execution_id in (eid, "w2"):
        assert json.loads(ok(cli(db_url, "status", execution_id, "--json")))["status"] == (
            "completed"
        )
    assert json.loads(ok(cli(db_url, "run", "cli_app:add", "--id", eid, "--json")))["result"] == 42


def test_send_event_to_waiting_execution(db_url: str) -> None:
    ok(cli(db_url, "run", "cli_app:approval", "--input", '"deploy"', "--id", "ap", "--no-wait"))
    ok(cli(db_url, "worker", "cli_app", "--until-idle", "--poll-interval", "0.05"))
    assert json.loads(ok(cli(db_url, "status", "ap", "--json")))["status"] == "waiting"

    out = ok(
        cli(
            db_url,
            "send-event",
            "ap",
            "cli-app-decision",
            "--payload",
            '{"verdict": "yes", "by": "bo"}',
        )
    )
    assert "cli-app-decision" in out and "ap" in out
    ok(cli(db_url, "worker", "cli_app", "--until-idle", "--poll-interval", "0.05"))
    result = json.loads(ok(cli(db_url, "run", "cli_app:approval", "--id", "ap", "--json")))
    assert result["result"] == "deploy: yes by bo"


# --------------------------------------------------------------------------- inspecting


def test_status_text_and_json(db_url: str) -> None:
    ok(cli(db_url, "run", "cli_app:greet", "--input", '"di"', "--id", "st"))
    out = ok(cli(db_url, "status", "st"))
    assert "st" in out and "cli-app-greet" in out and "completed" in out
    data = json.loads(ok(cli(db_url, "status", "st", "--json")))
    assert data["id"] == "st"
    assert data["durable_name"] == "cli-app-greet"
    assert data["status"] == "completed"
    assert data["attempts"] == 1
    assert data["error"] is None
    assert data["created_at"] and data["started_at"] and data["finished_at"]

    cli(db_url, "run", "cli_app:fail", "--id", "st-fail")
    data = json.loads(ok(cli(db_url, "status", "st-fail", "--json")))
    assert data["status"] == "failed"
    assert "cli failure on purpose" in data["error"]
    assert "cli failure on purpose" in ok(cli(db_url, "status", "st-fail"))


def test_list_filters_by_status(db_url: str) -> None:
    assert "no executions" in ok(cli(db_url, "list"))
    ok(cli(db_url, "run", "cli_app:noargs", "--id", "l-done"))
    cli(db_url, "run", "cli_app:fail", "--id", "l-failed")
    ok(cli(db_url, "run", "cli_app:noargs", "--id", "l-pending", "--no-wait"))

    def listed(*extra: str) -> set[str]:
        return {item["id"] for item in json.loads(ok(cli(db_url, "list", "--json", *extra)))}

    assert listed() == {"l-done", "l-failed", "l-pending"}
    assert listed("--status", "completed") == {"l-done"}
    assert listed("--status", "failed") == {"l-failed"}
    assert listed("--status", "pending") == {"l-pending"}
    assert listed("--name", "cli-app-fail") == {"l-failed"}

    text = ok(cli(db_url, "list", "--status", "failed"))
    assert "l-failed" in text and "l-done" not in text and "l-pending" not in text
    assert "ValueError" in text


def test_steps_text_and_json(db_url: str) -> None:
    lines = '[[{"sku": "a", "price": "1.5", "qty": 2}, {"sku": "b", "price": "2"}]]'
    ok(cli(db_url, "run", "cli_app:total", "--input", lines, "--id", "sp"))
    text = ok(cli(db_url, "steps", "sp"))
    assert "cli-app-line-0" in text and "cli-app-line-1" in text
    assert text.index("cli-app-line-0") < text.index("cli-app-line-1")
    assert "completed" in text
    data = json.loads(ok(cli(db_url, "steps", "sp", "--json")))
    assert [(s["name"], s["status"], s["attempts"]) for s in data] == [
        ("cli-app-line-0", "completed", 1),
        ("cli-app-line-1", "completed", 1),
    ]
    assert data[0]["seq"] < data[1]["seq"]
    assert "3.0" in data[0]["output_preview"]

    ok(cli(db_url, "run", "cli_app:noargs", "--id", "sp-none"))
    assert json.loads(ok(cli(db_url, "steps", "sp-none", "--json"))) == []


def test_cancel(db_url: str) -> None:
    ok(cli(db_url, "run", "cli_app:noargs", "--id", "c-pending", "--no-wait"))
    assert "cancelled" in ok(cli(db_url, "cancel", "c-pending"))
    assert json.loads(ok(cli(db_url, "status", "c-pending", "--json")))["status"] == "cancelled"
    again = json.loads(ok(cli(db_url, "cancel", "c-pending", "--json")))
    assert again == {"id": "c-pending", "cancelled": False, "status": "cancelled"}

    ok(cli(db_url, "run", "cli_app:noargs", "--id", "c-done"))
    data = json.loads(ok(cli(db_url, "cancel", "c-done", "--json")))
    assert data == {"id": "c-done", "cancelled": False, "status": "completed"}
    assert "completed" in ok(cli(db_url, "cancel", "c-done"))

    # Running a cancelled execution reports it and exits 1.
    result = cli(db_url, "run", "cli_app:noargs", "--id", "c-pending", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "cancelled"


def test_db_upgrade(db_url: str) -> None:
    out = ok(cli(db_url, "db", "upgrade"))
    assert "schema at version" in out
    assert int(out.strip().rsplit(" ", 1)[1]) >= 1
    assert ok(cli(db_url, "db", "upgrade")) == out  # idempotent


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "zart" in result.output


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(["run", "no_such_module_xyz:flow"], ["no_such_module_xyz"], id="bad-module"),
        pytest.param(["run", "cli_app:nope"], ["nope"], id="missing-attribute"),
        pytest.param(["run", "cli_app"], ["MODULE:FUNCTION"], id="no-colon"),
        pytest.param(
            ["run", "cli_app:plain_function", "--input", "1"], ["durable"], id="plain-function"
        ),
        pytest.param(["run", "cli_app:NOT_A_FUNCTION"], ["durable"], id="not-a-function"),
        pytest.param(["run", "does/not/exist.py:flow"], ["exist.py"], id="missing-file"),
        pytest.param(["run", "cli_app:add", "--input", "{oops"], ["JSON"], id="invalid-json"),
        pytest.param(["run", "cli_app:add", "--input", ""], ["JSON"], id="empty-input"),
        pytest.param(["run", "cli_app:add", "--input", '{"x": 1}'], ["a, b"], id="unknown-key"),
        pytest.param(["run", "cli_app:add", "--input", '["a", "b"]'], ["int"], id="wrong-type"),
        pytest.param(["run", "cli_app:add", "--input", "[1, 2, 3]"], [], id="too-many"),
        pytest.param(["run", "cli_app:add", "--input", "[1]"], ["b"], id="missing-argument"),
        pytest.param(["run", "cli_app:greet"], ["name"], id="no-input-for-parameter"),
        pytest.param(
            ["run", "cli_app:total", "--input", '[[{"sku": 1, "price": "1"}]]'],
            ["sku"],
            id="wrong-field-type",
        ),
        pytest.param(["worker", "no_such_module_xyz", "--until-idle"], [], id="worker-bad-module"),
    ],
)
def test_errors_are_one_line_exit_2(sqlite_url: str, args: list[str], fragments: list[str]) -> None:
    # Mistakes caught before the database matters: one backend is enough.
    assert_usage_error(cli(sqlite_url, *args), *fragments)


def test_unknown_execution_id(db_url: str) -> None:
    ok(cli(db_url, "db", "upgrade"))
    for args in (
        ["status", "no-such-id"],
        ["steps", "no-such-id", "--json"],
        ["cancel", "no-such-id"],
        ["send-event", "no-such-id", "e"],
    ):
        assert_usage_error(cli(db_url, *args), "no-such-id")


def test_run_target_given_as_file_path(sqlite_url: str, tmp_path: Path) -> None:
    flows = tmp_path / "rt_cli_file_flows.py"
    flows.write_text(
        "from zart import durable\n\n"
        "@durable('rt-cli-file-flow')\n"
        "async def double(x: int) -> int:\n"
        "    return 2 * x\n"
    )
    out = ok(cli(sqlite_url, "run", f"{flows}:double", "--input", "21", "--json"))
    assert json.loads(out)["result"] == 42


def test_run_module_failing_at_import(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "rt_cli_bad_template.py"
    bad.write_text(
        "from zart import durable, step\n\n"
        "@step('item-{idx}')\n"
        "async def item(index: int) -> None:\n"
        "    pass\n"
    )
    assert_usage_error(cli(sqlite_url, "run", f"{bad}:flow"), "StepNameError", "{idx}")


def test_send_event_invalid_payload(db_url: str) -> None:
    ok(cli(db_url, "run", "cli_app:approval", "--input", '"x"', "--id", "ev", "--no-wait"))
    assert_usage_error(
        cli(db_url, "send-event", "ev", "cli-app-decision", "--payload", "{x"), "JSON"
    )


def test_invalid_database_urls() -> None:
    assert_usage_error(cli("notaurl", "list"), "notaurl")
    assert_usage_error(cli("bogus://x", "list"), "bogus")


def test_resume_continues_a_cancelled_execution(db_url: str) -> None:
    import zart

    from cli_app import greet

    app = zart.Zart(db_url)
    app.submit(greet, "ana", execution_id="res-cli")
    app.cancel("res-cli")
    out = ok(cli(db_url, "resume", "res-cli"))
    assert "res-cli is pending" in out
    assert app.run(greet, execution_id="res-cli") == app.result("res-cli")
    assert app.status("res-cli").status == "completed"
    assert_usage_error(cli(db_url, "resume", "res-cli"), "not cancelled")
    app.close()


def test_list_shows_the_code_version(db_url: str) -> None:
    import zart

    from cli_app import greet

    with zart.Zart(db_url, version="build-42") as app:
        app.submit(greet, "ana", execution_id="ver-cli")
    out = ok(cli(db_url, "list"))
    header, row = out.splitlines()[0], next(x for x in out.splitlines() if "ver-cli" in x)
    assert "VERSION" in header and "build-42" in row
