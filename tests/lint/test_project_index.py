"""Steps defined in one module and called in another, found through the project index."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from zart_lint.engine._api import ProjectIndex, RuleOptions, lint_source, might_involve_steps

from lint_helpers import codes, write_tree

STEPS = """
from zart import step

@step("send-notification")
async def send(user): ...

@step("process-item-{index}")
async def process_item(index, item): ...
"""

LOOP_BODY = """
async def flow(users):
    for i, user in enumerate(users):
        await {call}(user)
"""


def lint_file(root: Path, relative: str, options: RuleOptions | None = None) -> list[str]:
    """Lint one file of the project the way pre-commit does: only that file is named."""
    options = options or RuleOptions()
    path = root / relative
    found_root = ProjectIndex.find_root(path)
    index = ProjectIndex.build(found_root, options)
    return codes(lint_source(path.read_text(), path, index, options))


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    return write_tree(tmp_path, {"pyproject.toml": "[project]\nname = 'demo'\n", **files})


@pytest.mark.parametrize(
    ("imports", "call"),
    [
        ("from pkg.steps import send", "send"),
        ("from pkg.steps import send as notify", "notify"),
        ("from .steps import send", "send"),
        ("from . import steps", "steps.send"),
        ("from pkg import steps", "steps.send"),
        ("import pkg.steps as s", "s.send"),
        ("import pkg.steps", "pkg.steps.send"),
        ("from pkg.steps import *", "send"),
    ],
)
def test_step_from_another_module(tmp_path: Path, imports: str, call: str) -> None:
    root = project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/steps.py": STEPS,
            "pkg/flows.py": imports + "\n" + LOOP_BODY.format(call=call),
        },
    )
    assert lint_file(root, "pkg/flows.py") == ["ZRT001"]


def test_templated_step_from_another_module_uses_its_template(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "app/steps.py": STEPS,
            "app/flows.py": """
from app.steps import process_item

async def flow(items):
    for i, item in enumerate(items):
        await process_item(i, item)
        await process_item(0, item)
""",
        },
    )
    assert lint_file(root, "app/flows.py") == ["ZRT003"]


def test_reexport_through_package_init(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            # Neither __init__ mentions zart: they are found through the step names.
            "pkg/__init__.py": "from .api import notify\n",
            "pkg/api.py": "from .impl.steps import send as notify\n",
            "pkg/impl/__init__.py": "",
            "pkg/impl/steps.py": STEPS,
            "other/flows.py": "from pkg import notify\n" + LOOP_BODY.format(call="notify"),
        },
    )
    assert lint_file(root, "other/flows.py") == ["ZRT001"]


def test_src_layout_and_git_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    root = write_tree(
        tmp_path,
        {
            "src/shop/__init__.py": "",
            "src/shop/steps.py": STEPS,
            "src/shop/flows.py": "from shop.steps import send\n" + LOOP_BODY.format(call="send"),
        },
    )
    assert ProjectIndex.find_root(root / "src" / "shop" / "flows.py") == root
    assert lint_file(root, "src/shop/flows.py") == ["ZRT001"]


def test_local_function_with_a_step_name_is_not_that_step(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/steps.py": STEPS,
            "pkg/flows.py": "async def send(user): ...\n" + LOOP_BODY.format(call="send"),
        },
    )
    assert lint_file(root, "pkg/flows.py") == []


def test_configured_decorator_across_modules(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "lib/__init__.py": "",
            "lib/tasks.py": "from myapp.tasks import task\n@task('constant')\ndef send(u): ...\n",
            "lib/flows.py": "from lib.tasks import send\n" + LOOP_BODY.format(call="send"),
        },
    )
    options = RuleOptions(extra_step_decorators=("myapp.tasks.task",))
    assert lint_file(root, "lib/flows.py", options) == ["ZRT001"]
    assert lint_file(root, "lib/flows.py") == []


def test_ignored_directories_and_broken_files(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            ".venv/lib/site-packages/pkg/steps.py": STEPS,
            "build/lib/pkg/steps.py": STEPS,
            "broken.py": "import zart\ndef oops(:\n",
            "flows.py": "from pkg.steps import send\n" + LOOP_BODY.format(call="send"),
        },
    )
    index = ProjectIndex.build(root, RuleOptions())
    assert index.lookup("pkg.steps.send") is None
    assert lint_file(root, "flows.py") == []


def test_find_root(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("")
    (nested / "mod.py").write_text("")
    assert ProjectIndex.find_root(nested / "mod.py") == tmp_path
    assert ProjectIndex.find_root(nested) == tmp_path
    (tmp_path / "a" / ".git").mkdir()
    assert ProjectIndex.find_root(nested / "mod.py") == tmp_path / "a"


def test_no_root_means_an_empty_index(tmp_path: Path) -> None:
    index = ProjectIndex.build(None, RuleOptions())
    assert index.lookup("pkg.steps.send") is None
    assert not might_involve_steps("print('hello')\n", index, RuleOptions())
    assert might_involve_steps("import zart\n", index, RuleOptions())


def test_fingerprint_follows_definitions(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "pkg/__init__.py": "from .steps import send\n",
            "pkg/steps.py": STEPS,
            "pkg/flows.py": "from pkg import send\n",
        },
    )
    options = RuleOptions()
    original = ProjectIndex.build(root, options).fingerprint()
    assert ProjectIndex.build(root, options).fingerprint() == original

    # A change inside a function body does not change any definition.
    (root / "pkg/steps.py").write_text(
        STEPS.replace("async def send(user): ...", "async def send(user):\n    return 1")
    )
    assert ProjectIndex.build(root, options).fingerprint() == original

    (root / "pkg/steps.py").write_text(STEPS.replace('"send-notification"', '"send-{user}"'))
    templated = ProjectIndex.build(root, options).fingerprint()
    assert templated != original

    (root / "pkg/__init__.py").write_text("from .steps import process_item\n")
    assert ProjectIndex.build(root, options).fingerprint() != templated

    extra = RuleOptions(extra_step_decorators=("x.task",))
    assert (
        ProjectIndex.build(root, extra).fingerprint()
        != ProjectIndex.build(root, options).fingerprint()
    )


def test_index_is_picklable_and_keeps_working(tmp_path: Path) -> None:
    root = project(tmp_path, {"pkg/__init__.py": "", "pkg/steps.py": STEPS})
    index = pickle.loads(pickle.dumps(ProjectIndex.build(root, RuleOptions())))
    step = index.lookup("pkg.steps.process_item")
    assert step is not None and step.template == "process-item-{index}"
    assert [param.name for param in step.params] == ["index", "item"]
    source = "from pkg.steps import send\n" + LOOP_BODY.format(call="send")
    assert codes(lint_source(source, root / "flows.py", index, RuleOptions())) == ["ZRT001"]


def test_prefilter(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {"pkg/__init__.py": "from .steps import send as notify\n", "pkg/steps.py": STEPS},
    )
    options = RuleOptions(extra_step_decorators=("myapp.tasks.task",))
    index = ProjectIndex.build(root, options)
    assert not might_involve_steps("def main():\n    print('hi')\n", index, options)
    assert might_involve_steps("from pkg import notify\n", index, options)
    assert might_involve_steps("from pkg import steps\n", index, options)
    assert might_involve_steps("from pkg.steps import process_item\n", index, options)
    assert might_involve_steps("from myapp.tasks import task\n", index, options)
    assert not might_involve_steps("resend = 1\n", index, options)


def test_namespace_package_and_script_directory(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            # "company" has no __init__.py: a PEP 420 namespace package.
            "src/company/shop/__init__.py": "",
            "src/company/shop/steps.py": STEPS,
            "src/company/shop/flows.py": "from company.shop.steps import send\n"
            + LOOP_BODY.format(call="send"),
            # A scripts directory run as `python scripts/run.py`: siblings import by name.
            "scripts/jobs.py": STEPS,
            "scripts/run.py": "import jobs\n" + LOOP_BODY.format(call="jobs.send"),
        },
    )
    assert lint_file(root, "src/company/shop/flows.py") == ["ZRT001"]
    assert lint_file(root, "scripts/run.py") == ["ZRT001"]
