"""The command line as argparse reads it: global options on either side of the command, each
option's conversion and its error, and the exits that need no app (help, version, usage)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from taskq_cli import argtypes
from taskq_cli.errors import mask_url
from taskq_cli.main import main
from taskq_cli.parser import GlobalOptions, build_parser, chosen_command
from taskq_cli.versions import installed_versions


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_global_options_before_the_command():
    args = parse("-A", "proj", "-b", "sqlite://", "--result-backend", "memory://", "-q", "status")
    assert GlobalOptions.from_namespace(args) == GlobalOptions(
        app="proj", broker="sqlite://", result_backend="memory://", quiet=True
    )
    command = chosen_command(args)
    assert command is not None
    assert command.name == "status"


def test_global_options_after_the_command():
    args = parse("worker", "-A", "proj", "--workdir", "/srv", "--config", "settings", "--debug")
    assert GlobalOptions.from_namespace(args) == GlobalOptions(
        app="proj", workdir="/srv", config="settings", debug=True
    )


def test_a_global_option_not_repeated_after_the_command_keeps_its_value():
    args = parse("-A", "proj", "-b", "sqlite://", "call", "-b", "memory://", "t")
    assert (args.app, args.broker) == ("proj", "memory://")


def test_worker_options():
    args = parse(
        "worker", "-P", "solo", "-c", "3", "-Q", "a, b,a", "-X", "c", "-l", "info", "-n",
        "w1@%h", "--prefetch-multiplier", "0", "--max-tasks-per-child", "10",
        "--max-memory-per-child", "2048", "--time-limit", "30", "--soft-time-limit", "20.5",
        "--purge", "--logfile", "w.log",
    )  # fmt: skip
    assert (args.pool, args.concurrency, args.queues, args.exclude_queues) == (
        "solo", 3, ["a", "b"], ["c"]
    )  # fmt: skip
    assert (args.loglevel, args.hostname, args.prefetch_multiplier) == ("INFO", "w1@%h", 0)
    assert (args.max_tasks_per_child, args.max_memory_per_child) == (10, 2048)
    assert (args.time_limit, args.soft_time_limit, args.purge, args.logfile) == (
        30.0, 20.5, True, "w.log"
    )  # fmt: skip


def test_worker_defaults_leave_the_settings_to_the_app():
    args = parse("worker")
    assert args.loglevel == "WARNING"
    unset = ("pool", "concurrency", "queues", "exclude_queues", "hostname", "time_limit")
    assert all(getattr(args, name) is None for name in unset)
    assert args.purge is False
    assert parse("worker", "--discard").purge is True


def test_call_options():
    args = parse(
        "call", "proj.add", "-a", "[1, 2]", "-k", '{"z": 3}', "--countdown", "5", "--expires",
        "2030-01-01T00:00:00", "--serializer", "pickle", "--queue", "q", "--exchange", "e",
        "--routing-key", "rk",
    )  # fmt: skip
    assert (args.name, args.args, args.kwargs, args.countdown) == ("proj.add", [1, 2], {"z": 3}, 5)
    assert args.expires == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert (args.serializer, args.queue, args.exchange, args.routing_key) == (
        "pickle", "q", "e", "rk"
    )  # fmt: skip
    eta = parse("call", "t", "--eta", "2030-01-01T01:00:00+01:00").eta
    assert eta == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert eta.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-a", "[1"], "argument -a/--args: not valid JSON"),
        (["-a", '{"x": 1}'], "argument -a/--args: expected a JSON array"),
        (["-k", "[1]"], "argument -k/--kwargs: expected a JSON object"),
        (["-k", "{x: 1}"], "argument -k/--kwargs: not valid JSON"),
        (["--eta", "tomorrow"], "argument --eta: expected an ISO 8601 time"),
        (["--countdown", "-1"], "argument --countdown: expected a positive number of seconds"),
        (["--expires", "soon"], "argument --expires: expected seconds from now or an ISO"),
        (["--expires", "0"], "argument --expires: expected a positive number of seconds"),
        (["--eta", "2030-01-01", "--countdown", "1"], "not allowed with argument --eta"),
    ],
)
def test_call_option_errors_name_the_option(capsys, argv, expected):
    assert expected in usage_error(capsys, "call", "t", *argv)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-c", "0"], "argument -c/--concurrency: expected a whole number >= 1"),
        (["-c", "two"], "argument -c/--concurrency: expected a whole number, got 'two'"),
        (["--prefetch-multiplier", "-1"], "expected a whole number >= 0"),
        (["--time-limit", "nan"], "argument --time-limit: expected a positive number"),
        (["-l", "loud"], "argument -l/--loglevel: expected one of DEBUG, INFO"),
        (["-Q", " , "], "argument -Q/--queues: expected comma-separated names"),
    ],
)
def test_worker_option_errors_name_the_option(capsys, argv, expected):
    assert expected in usage_error(capsys, "worker", *argv)


def test_loglevel_accepts_any_case_and_warn():
    assert argtypes.loglevel("debug") == "DEBUG"
    assert argtypes.loglevel("Warn") == "WARNING"


def test_unknown_command_lists_the_commands(capsys):
    err = usage_error(capsys, "wroker")
    assert "invalid choice: 'wroker'" in err
    for name in ("worker", "call", "result", "purge", "status"):
        assert f"'{name}'" in err


def test_unknown_option_is_a_usage_error(capsys):
    assert "unrecognized arguments: --nope" in usage_error(capsys, "status", "--nope")


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: taskq")
    assert "worker" in out
    assert "status" in out


def test_version_lists_the_installed_taskq_packages(capsys):
    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert {"taskq-cli", "taskq-core", "taskq-protocol"} <= set(names)
    assert names == sorted(names)
    assert dict(installed_versions())["taskq-cli"] == lines[names.index("taskq-cli")].split()[1]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@host:6379/0", "redis://:****@host:6379/0"),
        ("amqp://user:p%40ss@rabbit//", "amqp://user:****@rabbit//"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        (
            "sentinel://:a@h1:26379;sentinel://:b@h2:26379",
            "sentinel://:****@h1:26379;sentinel://:****@h2:26379",
        ),
    ],
)
def test_mask_url_hides_passwords_only(url, masked):
    assert mask_url(url) == masked
