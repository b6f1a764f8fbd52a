"""``-A``: every form Celery resolves, and the messages for what cannot be resolved.

The projects are real files in a temporary directory, imported in this process; each test
leaves ``sys.path`` and ``sys.modules`` as it found them.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq_cli.errors import CommandError
from taskq_cli.loader import find_app, load_app
from taskq_cli.main import main
from taskq_cli.parser import GlobalOptions

APP = 'from taskq import TaskQ\n{name} = TaskQ("{main}", broker="memory://")\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A directory to write modules into, as the working directory of a fresh import state."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    importlib.invalidate_caches()


def load(spec: str) -> TaskQ:
    return load_app(GlobalOptions(app=spec))


def error_of(spec: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        load(spec)
    return info.value


@pytest.mark.parametrize("attribute", ["app", "celery", "taskq"])
def test_module_with_a_conventional_attribute(project, attribute):
    write(project, {"tasks.py": APP.format(name=attribute, main="m") + "other = TaskQ('o')\n"})
    assert load("tasks").main == "m"


def test_the_working_directory_goes_first_on_sys_path(project):
    write(project, {"tasks.py": APP.format(name="app", main="m")})
    load("tasks")
    assert sys.path[0] == str(project)


def test_module_colon_attribute(project):
    write(project, {"tasks.py": APP.format(name="mine", main="m")})
    assert load("tasks:mine").main == "m"


def test_module_dot_attribute(project):
    write(project, {"tasks.py": APP.format(name="mine", main="m") + "app = TaskQ('other')\n"})
    assert load("tasks.mine").main == "m"


def test_module_dot_submodule_not_imported_by_its_package(project):
    write(project, {"proj/__init__.py": "", "proj/tasks.py": APP.format(name="app", main="t")})
    assert load("proj.tasks").main == "t"


def test_an_attribute_wins_over_a_submodule_of_the_same_name(project):
    # Celery looks the attribute up first: proj.app is the app, not proj/app.py.
    write(
        project,
        {
            "proj/__init__.py": APP.format(name="app", main="attribute"),
            "proj/app.py": APP.format(name="app", main="submodule"),
        },
    )
    assert load("proj.app").main == "attribute"


@pytest.mark.parametrize("submodule", ["taskq", "celery"])
def test_package_with_an_app_module(project, submodule):
    write(
        project,
        {"proj/__init__.py": "", f"proj/{submodule}.py": APP.format(name="app", main=submodule)},
    )
    assert load("proj").main == submodule


def test_package_prefers_taskq_py_over_celery_py(project):
    write(
        project,
        {
            "proj/__init__.py": "",
            "proj/celery.py": APP.format(name="app", main="celery"),
            "proj/taskq.py": APP.format(name="app", main="taskq"),
        },
    )
    assert load("proj").main == "taskq"


def test_django_layout_importing_the_app_in_the_package(project):
    write(
        project,
        {
            "proj/__init__.py": "from .taskq import app as taskq_app\n",
            "proj/taskq.py": APP.format(name="app", main="django"),
        },
    )
    assert load("proj").main == "django"


def test_single_instance_under_any_name(project):
    write(
        project, {"tasks.py": APP.format(name="queue_app", main="single") + "alias = queue_app\n"}
    )
    assert load("tasks").main == "single"


def test_several_instances_are_ambiguous(project):
    write(project, {"tasks.py": APP.format(name="one", main="1") + "two = TaskQ('2')\n"})
    message = str(error_of("tasks"))
    assert "tasks holds several TaskQ apps (one, two)" in message
    assert "-A tasks:one" in message


def test_conventional_names_holding_other_things_are_skipped(project):
    write(
        project,
        {"tasks.py": "import json as celery\napp = 42\n" + APP.format(name="mine", main="m")},
    )
    assert load("tasks").main == "m"


def test_no_app_says_what_was_tried(project):
    write(project, {"proj/__init__.py": "app = 'not an app'\n", "proj/celery.py": "x = 1\n"})
    message = str(error_of("proj"))
    assert message.startswith(
        "no taskq app found in 'proj': tried proj.app (a str, not a TaskQ app)"
    )
    for tried in ("proj.celery", "proj.taskq", "module proj.taskq", "any TaskQ instance in proj"):
        assert tried in message
    assert "-A proj.tasks:app" in message


def test_missing_module(project):
    error = error_of("nowhere.tasks")
    assert str(error).startswith(f"no module named 'nowhere' (looked in {project} and on sys.path)")
    assert "-A proj.tasks:app" in str(error)
    assert str(error_of("json.nothing_here")).startswith("no module named 'json.nothing_here'")


def test_missing_attribute(project):
    write(project, {"tasks.py": APP.format(name="app", main="m")})
    assert str(error_of("tasks:nope")) == "module 'tasks' has no attribute 'nope'"


def test_attribute_that_is_not_an_app(project):
    write(project, {"tasks.py": APP.format(name="app", main="m") + "number = 7\n"})
    assert str(error_of("tasks:number")).startswith("'tasks:number' is not a TaskQ app but 7")


def test_error_while_importing_shows_the_original_message(project):
    write(project, {"tasks.py": "x = 1 / 0\n"})
    error = error_of("tasks")
    assert str(error) == "importing 'tasks' failed: ZeroDivisionError: division by zero"
    assert isinstance(error.__cause__, ZeroDivisionError)


def test_a_module_that_imports_a_missing_module_is_an_import_error(project):
    write(project, {"proj/__init__.py": "", "proj/taskq.py": "import no_such_dependency\n"})
    message = str(error_of("proj"))
    assert message == (
        "importing 'proj.taskq' failed: ModuleNotFoundError: No module named 'no_such_dependency'"
    )


def test_syntax_error(project):
    write(project, {"tasks.py": "def broken(:\n"})
    assert str(error_of("tasks")).startswith("importing 'tasks' failed: SyntaxError:")


def test_overrides_apply_after_the_app_and_its_config(project):
    write(
        project,
        {
            "tasks.py": APP.format(name="app", main="m"),
            "settings.py": "broker_url = 'sqlite:///from-config.db'\ntask_default_queue = 'jobs'\n",
        },
    )
    app = load_app(GlobalOptions(app="tasks", config="settings"))
    assert (app.conf.broker_url, app.conf.task_default_queue) == (
        "sqlite:///from-config.db",
        "jobs",
    )
    app = load_app(
        GlobalOptions(
            app="tasks", config="settings", broker="memory://", result_backend="memory://x"
        )
    )
    assert (app.conf.broker_url, app.conf.result_backend) == ("memory://", "memory://x")


def test_no_app_option_gives_a_default_app(project):
    app = load_app(GlobalOptions(broker="memory://"))
    assert app.conf.broker_url == "memory://"
    assert app.tasks is not None


def test_workdir_is_entered_before_loading(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    write(elsewhere, {"remote_tasks.py": APP.format(name="app", main="remote")})
    assert load_app(GlobalOptions(app="remote_tasks", workdir=str(elsewhere))).main == "remote"
    assert Path.cwd() == elsewhere
    with pytest.raises(CommandError, match="cannot change to --workdir"):
        load_app(GlobalOptions(workdir=str(elsewhere / "missing")))


def test_bad_setting_names_it(project, capsys):
    write(
        project,
        {"tasks.py": APP.format(name="app", main="m") + "app.conf.worker_concurrency = 0\n"},
    )
    assert main(["-A", "tasks", "status"]) == 1
    assert capsys.readouterr().err == (
        "Error: bad configuration: worker_concurrency: expected a whole number >= 1, got 0\n"
    )


def test_main_reports_import_errors_in_one_line_unless_asked(project, capsys, monkeypatch):
    write(project, {"tasks.py": "raise RuntimeError('no database')\n"})
    assert main(["-A", "tasks", "status"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "Error: importing 'tasks' failed: RuntimeError: no database "
        "(run with --debug or TASKQ_TRACEBACK=1 for the traceback)\n"
    )
    assert main(["-A", "tasks", "--debug", "status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: no database" in err
    assert err.endswith("Error: importing 'tasks' failed: RuntimeError: no database\n")
    monkeypatch.setenv("TASKQ_TRACEBACK", "1")
    assert main(["-A", "tasks", "status"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_empty_spec(project):
    with pytest.raises(CommandError, match="-A needs a module or module:attribute"):
        find_app(" ")
