"""The serializer registry: lookups, dumps/loads, accept_content, disabling, entry points."""

from __future__ import annotations

import importlib.metadata
import pickle
import subprocess
import sys
import threading
import time
import types
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

import taskq_serializers
from taskq_serializers import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    ExtraNotInstalled,
    Serializer,
    SerializerRegistry,
    UnknownSerializer,
)
from taskq_serializers.base import INSTALL_COMMANDS
from taskq_serializers.formats.json import JSON_SERIALIZER, JSONSerializer
from taskq_serializers.formats.pickle import PICKLE_SERIALIZER
from taskq_serializers.plugins import EXTRAS
from taskq_serializers.serialization import DEFAULT_ACCEPT, TRUSTED_CONTENT

PICKLE = "application/x-python-serialize"


class Upper:
    """A tiny text format: upper-cases on the way out, lower-cases on the way in."""

    def __init__(self, name: str = "upper", content_type: str = "text/x-upper") -> None:
        self.name = name
        self.content_type = content_type
        self.content_encoding = "utf-8"

    def dumps(self, obj: object, /) -> bytes:
        return str(obj).upper().encode()

    def loads(self, data: bytes, /) -> object:
        return data.decode().lower()


class Broken(Upper):
    """Breaks the contract: raises bare exceptions."""

    def dumps(self, obj: object, /) -> bytes:
        raise RuntimeError("boom")

    def loads(self, data: bytes, /) -> object:
        raise KeyError("boom")


def _round_trip(
    reg: SerializerRegistry,
    obj: object,
    serializer: str = "json",
    accept: Collection[str] | None = None,
    force: bool = False,
) -> object:
    content_type, encoding, body = reg.dumps(obj, serializer)
    return reg.loads(body, content_type, encoding, accept=accept, force=force)


@pytest.fixture
def reg() -> SerializerRegistry:
    """A registry with the built-in formats, found through the installed entry points."""
    return SerializerRegistry.with_defaults()


# -- lookups -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("json", "application/json"),
        ("pickle", PICKLE),
        ("yaml", "application/x-yaml"),
        ("msgpack", "application/x-msgpack"),
    ],
)
def test_builtins_are_found_by_name_and_content_type(
    reg: SerializerRegistry, name: str, content_type: str
) -> None:
    by_name = reg.get(name)
    assert by_name.content_type == content_type
    assert reg.get(content_type) is by_name
    assert reg.for_content_type(content_type) is by_name


def test_unknown_name_suggests_the_close_one(reg: SerializerRegistry) -> None:
    with pytest.raises(UnknownSerializer, match=r"unknown serializer 'jsno'.*Did you mean 'json'"):
        reg.get("jsno")
    with pytest.raises(UnknownSerializer, match="Did you mean 'application/json'"):
        reg.for_content_type("application/jsn")


def test_for_content_type_does_not_take_names(reg: SerializerRegistry) -> None:
    with pytest.raises(UnknownSerializer):
        reg.for_content_type("json")


@pytest.mark.parametrize(
    ("key", "extra"),
    [("yaml", "yaml"), ("msgpack", "msgpack"), ("application/x-yaml", "yaml")],
)
def test_unknown_optional_format_names_its_extra(key: str, extra: str) -> None:
    with pytest.raises(UnknownSerializer, match=rf"pip install 'taskq\[{extra}\]'"):
        SerializerRegistry().get(key)


def test_lookups_raise_lookup_error_for_callers_that_catch_that() -> None:
    with pytest.raises(LookupError):
        SerializerRegistry().get("json")


# -- register / unregister ---------------------------------------------------------------------


def test_register_replaces_the_serializer_of_the_same_name() -> None:
    reg = SerializerRegistry()
    reg.register(Upper())
    replacement = Upper(content_type="text/x-upper2")
    reg.register(replacement)
    assert reg.get("upper") is replacement
    assert reg.for_content_type("text/x-upper2") is replacement
    with pytest.raises(UnknownSerializer):
        reg.for_content_type("text/x-upper")


def test_unregister_hands_the_content_type_back() -> None:
    reg = SerializerRegistry()
    first, second = Upper("first"), Upper("second")
    reg.register(first)
    reg.register(second)  # same content type: the later one decodes it, as in kombu
    assert reg.for_content_type("text/x-upper") is second
    reg.unregister("second")
    assert reg.for_content_type("text/x-upper") is first
    reg.unregister("first")
    with pytest.raises(UnknownSerializer):
        reg.for_content_type("text/x-upper")


def test_unregister_unknown_name(reg: SerializerRegistry) -> None:
    with pytest.raises(UnknownSerializer, match="'nope'"):
        reg.unregister("nope")


def test_unregistered_builtin_stays_gone(reg: SerializerRegistry) -> None:
    reg.unregister("pickle")  # before anything was looked up
    with pytest.raises(UnknownSerializer):
        reg.get("pickle")
    reg.get("json")
    with pytest.raises(UnknownSerializer):
        reg.get("pickle")


# -- dumps -------------------------------------------------------------------------------------


def test_dumps_returns_kombus_triple(reg: SerializerRegistry) -> None:
    assert reg.dumps({"a": 1}) == ("application/json", "utf-8", b'{"a":1}')
    content_type, encoding, body = reg.dumps([1], serializer="pickle")
    assert (content_type, encoding) == (PICKLE, "binary")
    assert pickle.loads(body) == [1]


def test_dumps_raw_matches_kombu(reg: SerializerRegistry) -> None:
    assert reg.dumps(b"\x00\xff", "raw") == ("application/data", "binary", b"\x00\xff")
    assert reg.dumps(bytearray(b"ab"), "raw") == ("application/data", "binary", b"ab")
    assert reg.dumps("é", "raw") == ("application/data", "utf-8", "é".encode())


@pytest.mark.parametrize("value", [{"a": 1}, "\ud800"])
def test_dumps_raw_refuses_what_is_not_text_or_bytes(
    reg: SerializerRegistry, value: object
) -> None:
    with pytest.raises(EncodeError):
        reg.dumps(value, "raw")


def test_dumps_unknown_serializer(reg: SerializerRegistry) -> None:
    with pytest.raises(UnknownSerializer, match="Did you mean 'pickle'"):
        reg.dumps(1, "pickel")


def test_dumps_encode_error_passes_through(reg: SerializerRegistry) -> None:
    with pytest.raises(EncodeError, match="json"):
        reg.dumps(object())


def test_a_plugin_raising_bare_exceptions_is_wrapped() -> None:
    reg = SerializerRegistry()
    reg.register(Broken())
    with pytest.raises(EncodeError, match="upper serializer failed: RuntimeError: boom"):
        reg.dumps(1, "upper")
    with pytest.raises(DecodeError, match="upper serializer failed: KeyError"):
        reg.loads(b"x", "text/x-upper", "utf-8", accept=["upper"])


def test_an_unimportable_format_library_reaches_the_caller(
    reg: SerializerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ExtraNotInstalled, match=r"taskq\[yaml\]"):
        reg.dumps(1, "yaml")


# -- loads and accept_content ------------------------------------------------------------------


def test_loads_json_by_default(reg: SerializerRegistry) -> None:
    when = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert _round_trip(reg, {"when": when}) == {"when": when}


def test_accept_none_means_json_only(reg: SerializerRegistry) -> None:
    assert frozenset({"application/json"}) == DEFAULT_ACCEPT
    with pytest.raises(ContentDisallowed, match="accept_content allows application/json") as info:
        _round_trip(reg, 1, "pickle")
    assert info.value.content_type == PICKLE
    assert not info.value.disabled


@pytest.mark.parametrize("accept", [["pickle"], [PICKLE], ("json", "pickle"), {"pickle"}])
def test_accept_takes_names_and_content_types(reg: SerializerRegistry, accept: list[str]) -> None:
    assert _round_trip(reg, (1, 2), "pickle", accept=accept) == (1, 2)


def test_content_not_accepted_is_refused(reg: SerializerRegistry) -> None:
    with pytest.raises(ContentDisallowed, match="application/x-yaml"):
        _round_trip(reg, 1, "yaml", accept=["json", "msgpack"])


def test_force_skips_the_accept_check(reg: SerializerRegistry) -> None:
    assert _round_trip(reg, [1], "pickle", accept=["json"], force=True) == [1]


def test_accept_normalization_matches_prepare_accept_content(reg: SerializerRegistry) -> None:
    assert reg.accept_content_types(["json", "application/x-yaml", "pickle"]) == {
        "application/json",
        "application/x-yaml",
        PICKLE,
    }


def test_accept_with_an_unknown_name_fails_loudly(reg: SerializerRegistry) -> None:
    with pytest.raises(UnknownSerializer, match="Did you mean 'json'"):
        reg.loads(b"1", "application/json", "utf-8", accept=["jsn"])


def test_accept_as_a_bare_string_is_a_type_error(reg: SerializerRegistry) -> None:
    with pytest.raises(TypeError, match="not the string 'json'"):
        reg.accept_content_types("json")


@pytest.mark.parametrize("content_type", ["", None])
def test_content_without_a_type_is_raw_data(reg: SerializerRegistry, content_type: str) -> None:
    # kombu: no content type means application/data, always trusted, returned as it is.
    assert reg.loads(b"\x00\xff", content_type, "binary", accept=["json"]) == b"\x00\xff"
    assert reg.loads("é".encode(), content_type, "utf-8", accept=["json"]) == "é"
    assert reg.loads(b"abc", content_type, "") == "abc"  # no encoding means utf-8


def test_trusted_content_is_accepted_whatever_accept_says(reg: SerializerRegistry) -> None:
    assert frozenset({"application/data", "application/text"}) == TRUSTED_CONTENT
    assert reg.loads(b"hi", "application/text", "utf-8", accept=[]) == "hi"


def test_accepted_type_without_a_serializer_is_decoded_as_text(reg: SerializerRegistry) -> None:
    assert reg.loads(b"hello", "text/plain", "utf-8", accept=["text/plain"]) == "hello"
    assert reg.loads(b"\x00", "text/plain", "ASCII-8BIT", accept=["text/plain"]) == b"\x00"


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        (b"\xff", "utf-8", "not valid utf-8"),
        (b"abc", "no-such-codec", "unknown content encoding"),
        (b"YWJj", "base64", "unknown content encoding"),  # not a text encoding
    ],
)
def test_raw_text_that_cannot_be_decoded(
    reg: SerializerRegistry, data: bytes, encoding: str, message: str
) -> None:
    with pytest.raises(DecodeError, match=message):
        reg.loads(data, "application/data", encoding)


def test_loads_corrupt_json(reg: SerializerRegistry) -> None:
    with pytest.raises(DecodeError, match="cannot decode json"):
        reg.loads(b"{", "application/json", "utf-8")


def test_a_serializer_registered_for_application_data_decodes_it() -> None:
    """This is how Celery's auth serializer receives: application/data, decoded by auth."""
    reg = SerializerRegistry()
    reg.register(Upper("auth", "application/data"))
    assert reg.loads(b"SIGNED", "application/data", "utf-8", accept=["auth"]) == "signed"
    assert reg.loads(b"SIGNED", "", "utf-8", accept=["auth"]) == "signed"


# -- enable / disable ---------------------------------------------------------------------------


def test_disable_refuses_even_accepted_content(reg: SerializerRegistry) -> None:
    reg.disable("pickle")
    content_type, encoding, body = reg.dumps([1], "pickle")  # sending is unaffected
    with pytest.raises(ContentDisallowed, match="disabled") as info:
        reg.loads(body, content_type, encoding, accept=["pickle"])
    assert info.value.disabled
    assert reg.loads(body, content_type, encoding, accept=["pickle"], force=True) == [1]
    reg.enable(PICKLE)
    assert reg.loads(body, content_type, encoding, accept=["pickle"]) == [1]


def test_disable_insecure_keeps_only_json(reg: SerializerRegistry) -> None:
    reg.disable_insecure()
    assert _round_trip(reg, {"a": 1}) == {"a": 1}
    for name in ("pickle", "yaml", "msgpack"):
        with pytest.raises(ContentDisallowed, match="disabled"):
            _round_trip(reg, [1], name, accept=[name])


def test_disable_insecure_with_an_allow_list(reg: SerializerRegistry) -> None:
    reg.disable("msgpack")
    reg.disable_insecure(allowed=["msgpack", "application/x-yaml"])
    assert _round_trip(reg, [1], "msgpack", accept=["msgpack"]) == [1]
    assert _round_trip(reg, [1], "yaml", accept=["yaml"]) == [1]
    with pytest.raises(ContentDisallowed):
        _round_trip(reg, [1])


def test_disable_insecure_none_disables_everything(reg: SerializerRegistry) -> None:
    reg.disable_insecure(allowed=None)
    with pytest.raises(ContentDisallowed):
        _round_trip(reg, [1])


def test_disable_insecure_covers_plugins_not_yet_loaded(fake_group: FakeGroup) -> None:
    reg = SerializerRegistry(entry_point_group=fake_group.name)
    reg.disable_insecure(allowed=())
    with pytest.raises(ContentDisallowed, match="disabled"):
        reg.loads(b"X", "text/x-upper", "utf-8", accept=["upper"])


def test_a_serializer_registered_after_disable_insecure_starts_enabled() -> None:
    reg = SerializerRegistry()
    reg.disable_insecure(allowed=())
    reg.register(Upper())
    assert reg.loads(b"X", "text/x-upper", "utf-8", accept=["upper"]) == "x"


def test_disable_unknown_name(reg: SerializerRegistry) -> None:
    with pytest.raises(UnknownSerializer):
        reg.disable("pikle")


# -- entry points --------------------------------------------------------------------------------

FAKE_GROUP = "taskq.test-serializers"
PLUGIN_MODULE = "taskq_serializers_test_plugins"


def _slow_factory() -> Upper:
    time.sleep(0.2)  # long enough for a racing thread to look while this one is loading
    return Upper("slow", "text/x-slow")


def _not_a_serializer() -> object:
    return object()


@dataclass
class FakeGroup:
    name: str
    #: one entry per time the group was listed
    calls: list[str] = field(default_factory=list[str])


@pytest.fixture
def fake_group(monkeypatch: pytest.MonkeyPatch) -> FakeGroup:
    """An entry-point group holding an instance, a class, a factory and three broken values."""
    module = types.ModuleType(PLUGIN_MODULE)
    module.INSTANCE = Upper()  # type: ignore[attr-defined]
    module.CLASS = JSONSerializer  # type: ignore[attr-defined]
    module.SLOW = _slow_factory  # type: ignore[attr-defined]
    module.WRONG = _not_a_serializer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PLUGIN_MODULE, module)
    points = [
        importlib.metadata.EntryPoint(name, f"{PLUGIN_MODULE}:{attr}", FAKE_GROUP)
        for name, attr in [
            ("upper", "INSTANCE"),
            ("json", "CLASS"),
            ("slow", "SLOW"),
            ("wrong", "WRONG"),
            ("missing", "MISSING"),
        ]
    ] + [importlib.metadata.EntryPoint("gone", "no_such_module_anywhere:X", FAKE_GROUP)]
    real = importlib.metadata.entry_points
    fake = FakeGroup(FAKE_GROUP)

    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        if group != FAKE_GROUP:
            return list(real(group=group))
        fake.calls.append(group)
        return points

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return fake


def test_plugins_load_on_the_first_miss_only(fake_group: FakeGroup) -> None:
    reg = SerializerRegistry(entry_point_group=fake_group.name)
    reg.register(Upper("handmade", "text/x-handmade"))
    reg.get("handmade")
    assert fake_group.calls == []  # nothing missed yet, nothing loaded
    assert reg.get("upper").content_type == "text/x-upper"
    assert isinstance(reg.get("json"), JSONSerializer)  # a class is called as a factory
    assert reg.get("slow").content_type == "text/x-slow"  # so is a function
    with pytest.raises(UnknownSerializer):
        reg.get("still-unknown")
    assert fake_group.calls == [FAKE_GROUP]  # cached after the first miss


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("wrong", "is not a valid plugin"),
        ("missing", "failed to load: AttributeError"),
        ("gone", "failed to load: ModuleNotFoundError"),
    ],
)
def test_a_broken_plugin_is_reported_when_asked_for(
    fake_group: FakeGroup, name: str, why: str
) -> None:
    reg = SerializerRegistry(entry_point_group=fake_group.name)
    assert reg.get("upper")  # the others still load
    with pytest.raises(UnknownSerializer, match=why):
        reg.get(name)


def test_a_hand_registered_serializer_wins_over_a_plugin(fake_group: FakeGroup) -> None:
    reg = SerializerRegistry(entry_point_group=fake_group.name)
    mine = Upper("upper", "text/x-mine")
    reg.register(mine)
    reg.get("slow")  # triggers discovery, which also offers a plugin called "upper"
    assert reg.get("upper") is mine


def test_concurrent_first_lookups_see_every_plugin(fake_group: FakeGroup) -> None:
    reg = SerializerRegistry(entry_point_group=fake_group.name)
    results: list[object] = []

    def look() -> None:
        try:
            results.append(reg.get("slow"))
        except UnknownSerializer as exc:
            results.append(exc)

    threads = [threading.Thread(target=look) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 4
    assert all(isinstance(result, Upper) for result in results)


def test_a_plugin_that_looks_up_during_discovery_does_not_deadlock(
    fake_group: FakeGroup, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = SerializerRegistry(entry_point_group=fake_group.name)

    def nosy_factory() -> Upper:
        reg.get("anything")  # re-enters discovery from inside it
        return Upper("nosy", "text/x-nosy")

    monkeypatch.setattr(sys.modules[PLUGIN_MODULE], "SLOW", nosy_factory)
    done = threading.Event()

    def look() -> None:
        with pytest.raises(UnknownSerializer, match=r"slow.*UnknownSerializer"):
            reg.get("slow")
        done.set()

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    assert done.wait(timeout=10)


def test_installed_entry_points_name_the_format_modules() -> None:
    """Fails until the package is reinstalled after its pyproject.toml changed."""
    points = {
        ep.name: ep.value for ep in importlib.metadata.entry_points(group="taskq.serializers")
    }
    assert {name: points.get(name) for name in ("json", "pickle", "yaml", "msgpack")} == {
        "json": "taskq_serializers.formats.json:JSON_SERIALIZER",
        "pickle": "taskq_serializers.formats.pickle:PICKLE_SERIALIZER",
        "yaml": "taskq_serializers.formats.yaml:YAML_SERIALIZER",
        "msgpack": "taskq_serializers.formats.msgpack:MSGPACK_SERIALIZER",
    }


def test_default_registry_holds_the_builtin_instances() -> None:
    assert taskq_serializers.registry.get("json") is JSON_SERIALIZER
    assert taskq_serializers.registry.get("pickle") is PICKLE_SERIALIZER


# -- the module-level API ----------------------------------------------------------------------


def test_module_dumps_and_loads_use_the_default_registry() -> None:
    assert taskq_serializers.dumps([1]) == ("application/json", "utf-8", b"[1]")
    assert taskq_serializers.loads(b"[1]", "application/json", "utf-8") == [1]
    assert isinstance(taskq_serializers.registry.get("json"), Serializer)


@pytest.mark.parametrize(
    "error",
    [
        ContentDisallowed(PICKLE, frozenset({"application/json"})),
        ContentDisallowed(PICKLE, frozenset(), disabled=True),
        ExtraNotInstalled("the yaml serializer", "PyYAML", "yaml"),
    ],
)
def test_errors_survive_pickling(error: Exception) -> None:
    """Errors cross process pools; they must come back with the same message and fields."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_install_hints_point_at_real_extras() -> None:
    extras = set(importlib.metadata.metadata("taskq-serializers").get_all("Provides-Extra") or [])
    assert set(INSTALL_COMMANDS) <= extras
    assert set(EXTRAS.values()) <= set(INSTALL_COMMANDS)


def test_importing_the_package_imports_no_optional_library() -> None:
    code = (
        "import sys, taskq_serializers\n"
        "taskq_serializers.dumps([1])\n"
        "print(sorted({'yaml', 'msgpack', 'brotli', 'zstandard'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_resolved_accept_sets_take_the_fast_path_and_still_refuse() -> None:
    reg = SerializerRegistry.with_defaults()
    allowed = reg.accept_content_types(["json"])
    assert reg.loads(b"[1]", "application/json", "utf-8", accept=allowed) == [1]
    # A frozenset of names (not content types) is resolved, not mistaken for types.
    assert reg.loads(b"[1]", "application/json", "utf-8", accept=frozenset({"json"})) == [1]
    with pytest.raises(ContentDisallowed):
        reg.loads(pickle.dumps(1), "application/x-python-serialize", "binary", accept=allowed)
    pickle_allowed = reg.accept_content_types(["json", "pickle"])
    reg.disable("pickle")
    with pytest.raises(ContentDisallowed):
        reg.loads(pickle.dumps(1), "application/x-python-serialize", "binary",
                  accept=pickle_allowed)  # fmt: skip
