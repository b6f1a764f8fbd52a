"""Settings: Celery's names, defaults, old names, loading from objects, and validation."""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import pytest

from taskq import TaskQ
from taskq.config import DEFAULTS, Settings
from taskq.exceptions import ImproperlyConfigured


def test_defaults_are_celerys_except_where_taskq_is_safer() -> None:
    conf = Settings()
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_default_queue == "celery"
    assert conf.result_expires == 86400.0
    assert conf.worker_prefetch_multiplier == 4
    assert conf.task_acks_late is True  # taskq: a task whose worker dies runs again
    assert conf["broker_url"] is None


def test_attribute_and_item_access_agree() -> None:
    conf = Settings()
    conf.task_serializer = "msgpack"
    assert conf["task_serializer"] == "msgpack"
    conf["worker_concurrency"] = 3
    assert conf.worker_concurrency == 3
    assert conf.changes() == {"task_serializer": "msgpack", "worker_concurrency": 3}
    with pytest.raises(AttributeError, match="no setting"):
        _ = conf.not_a_setting


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("BROKER_URL", "broker_url"),
        ("CELERY_RESULT_BACKEND", "result_backend"),
        ("CELERY_TASK_SERIALIZER", "task_serializer"),
        ("CELERY_ACCEPT_CONTENT", "accept_content"),
        ("CELERYD_CONCURRENCY", "worker_concurrency"),
        ("CELERY_ALWAYS_EAGER", "task_always_eager"),
        ("CELERY_TRACK_STARTED", "task_track_started"),
    ],
)
def test_old_uppercase_names_are_read_as_new_ones(old: str, new: str) -> None:
    conf = Settings({old: "x"})
    assert conf[new] == "x"


def test_config_from_module_path_and_object_and_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("proj_celeryconfig")
    module.broker_url = "memory://"  # type: ignore[attr-defined]
    module.task_routes = {"a.*": "q"}  # type: ignore[attr-defined]
    module.helper = lambda: None  # type: ignore[attr-defined]  # not a setting
    module.SOME_CONSTANT = 3  # type: ignore[attr-defined]  # not a setting either
    monkeypatch.setitem(sys.modules, "proj_celeryconfig", module)
    conf = Settings()
    conf.config_from_object("proj_celeryconfig")
    assert conf.broker_url == "memory://"
    assert conf.task_routes == {"a.*": "q"}
    assert "helper" not in conf.changes()
    assert "SOME_CONSTANT" not in conf.changes()

    class Config:
        result_backend = "memory://"
        CELERY_TASK_SERIALIZER = "yaml"

    conf.config_from_object(Config)
    assert (conf.result_backend, conf.task_serializer) == ("memory://", "yaml")
    conf.config_from_object({"worker_concurrency": 2})
    assert conf.worker_concurrency == 2


def test_django_style_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = types.SimpleNamespace(
        CELERY_BROKER_URL="redis://", CELERY_TASK_ALWAYS_EAGER=True, DEBUG=True, SECRET_KEY="s"
    )
    module = types.ModuleType("fake_django_conf")
    module.settings = settings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_django_conf", module)
    conf = Settings()
    conf.config_from_object("fake_django_conf:settings", namespace="CELERY")
    assert conf.changes() == {"broker_url": "redis://", "task_always_eager": True}


def test_config_from_a_missing_module_names_it() -> None:
    with pytest.raises(ImproperlyConfigured, match="no_such_config_module"):
        Settings().config_from_object("no_such_config_module")
    with pytest.raises(ImproperlyConfigured, match="has no attribute 'nope'"):
        Settings().config_from_object("json:nope")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("worker_concurrency", 0, "whole number >= 1"),
        ("worker_concurrency", "4", "whole number >= 1"),
        ("accept_content", "json", "write ['json']"),
        ("task_time_limit", -1, "positive number"),
        ("task_acks_late", "yes", "expected bool"),
        ("task_default_rate_limit", "ten per second", "rate like"),
        ("task_routes", 5, "dict, a list of routers or a function"),
        ("broker_transport_options", [], "mapping"),
        ("task_default_exchange_type", "weird", "one of"),
    ],
)
def test_bad_settings_fail_naming_the_setting(key: str, value: Any, fragment: str) -> None:
    conf = Settings({key: value})
    with pytest.raises(ImproperlyConfigured) as info:
        conf.validate()
    assert info.value.setting == key
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{key}: ")


def test_soft_limit_must_be_below_hard_limit() -> None:
    with pytest.raises(ImproperlyConfigured, match="task_soft_time_limit"):
        Settings({"task_time_limit": 10, "task_soft_time_limit": 10}).validate()
    Settings({"task_time_limit": 10, "task_soft_time_limit": 5}).validate()


def test_a_typo_warns_with_did_you_mean(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="taskq.config"):
        Settings({"task_serialiser": "json", "my_own_setting": 1}).validate()
    assert "did you mean 'task_serializer'" in caplog.text
    assert "my_own_setting" not in caplog.text


def test_every_default_passes_its_own_check() -> None:
    for key, setting in DEFAULTS.items():
        assert setting.check(setting.default) is None, key


def test_broker_use_ssl_reaches_the_transport_as_its_ssl_option() -> None:
    app = TaskQ("tls", broker="memory://tls")
    app.conf.update(broker_use_ssl={"ssl_cert_reqs": "required"})
    assert app.transport_options()["ssl"] == {"ssl_cert_reqs": "required"}
    app.conf.update(broker_transport_options={"ssl": True})
    assert app.transport_options()["ssl"] is True  # an explicit transport option wins


def test_redis_backend_use_ssl_reaches_the_backend_as_its_ssl_option() -> None:
    app = TaskQ("tls", broker="memory://tls", backend="memory://tls")
    app.conf.update(redis_backend_use_ssl={"ssl_cert_reqs": "none"})
    assert app.backend_options().transport_options["ssl"] == {"ssl_cert_reqs": "none"}


def test_broker_use_ssl_of_the_wrong_type_names_the_setting() -> None:
    app = TaskQ("tls", broker="memory://tls")
    app.conf.update(broker_use_ssl="yes")
    with pytest.raises(ImproperlyConfigured, match="broker_use_ssl"):
        app.conf.validate()
