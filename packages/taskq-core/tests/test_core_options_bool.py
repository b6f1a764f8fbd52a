"""``taskq.options.read_bool``: the one set of spellings every package takes for a boolean
option or URL query value; anything else names the setting and the option."""

from __future__ import annotations

import pytest

from taskq.exceptions import ImproperlyConfigured
from taskq.options import read_bool

TRUE_TEXT = ["true", "1", "yes", "on"]
FALSE_TEXT = ["false", "0", "no", "off"]


def _spelled(words: list[str]) -> list[str]:
    """Each word as written, in capitals, capitalised and with spaces around it."""
    return [form for word in words for form in (word, word.upper(), word.title(), f" {word}\t")]


@pytest.mark.parametrize("value", [True, 1, *_spelled(TRUE_TEXT)])
def test_what_reads_as_true(value: object) -> None:
    assert read_bool(value, setting="broker_transport_options", name="flag") is True


@pytest.mark.parametrize("value", [False, 0, *_spelled(FALSE_TEXT)])
def test_what_reads_as_false(value: object) -> None:
    assert read_bool(value, setting="broker_transport_options", name="flag") is False


@pytest.mark.parametrize(
    "value", [2, -1, 1.0, 0.0, "maybe", "", "  ", "y", "n", "t", "2", None, [], b"true"]
)
def test_anything_else_names_the_setting_and_the_option(value: object) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        read_bool(value, setting="broker_url", name="ssl_check_hostname")
    assert raised.value.setting == "broker_url"
    assert str(raised.value) == (
        f"broker_url: ssl_check_hostname must be true or false, got {value!r}"
    )
