"""ImproperlyConfigured: its message names the setting; it pickles (a prefork child sends it
to the parent); ``again()`` gives another thread its own copy to raise."""

from __future__ import annotations

import pickle

from taskq.exceptions import ImproperlyConfigured


def test_the_message_names_the_setting_and_it_pickles_whole() -> None:
    error = ImproperlyConfigured("broker_url", "no such host")
    assert str(error) == "broker_url: no such host"
    loaded = pickle.loads(pickle.dumps(error))
    assert (loaded.setting, loaded.problem) == ("broker_url", "no such host")


def test_again_is_a_new_exception_with_the_same_setting_problem_and_cause() -> None:
    cause = OSError("certificate verify failed")
    try:
        raise ImproperlyConfigured("broker_use_ssl", "wrong CA") from cause
    except ImproperlyConfigured as raised:
        original = raised
    copy = original.again()
    assert copy is not original
    assert (copy.setting, copy.problem, str(copy)) == (
        original.setting, original.problem, str(original),
    )  # fmt: skip
    assert copy.__cause__ is cause
    assert copy.__traceback__ is None  # its own, once raised
