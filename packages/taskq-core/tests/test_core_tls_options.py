"""``taskq.tls.cert_reqs``: the verify modes Celery and kombu users write, read once for every
transport and backend; anything else names the setting."""

from __future__ import annotations

import ssl

import pytest

from taskq.exceptions import ImproperlyConfigured
from taskq.tls import cert_reqs


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("required", ssl.CERT_REQUIRED),
        ("CERT_REQUIRED", ssl.CERT_REQUIRED),
        (" optional ", ssl.CERT_OPTIONAL),
        ("cert_none", ssl.CERT_NONE),
        (ssl.CERT_OPTIONAL, ssl.CERT_OPTIONAL),
        (0, ssl.CERT_NONE),
        (2, ssl.CERT_REQUIRED),
    ],
)
def test_the_forms_a_verify_mode_takes(value: object, mode: ssl.VerifyMode) -> None:
    assert cert_reqs(value, "broker_use_ssl", "cert_reqs") is mode


@pytest.mark.parametrize("value", ["sometimes", 7, True, None, 1.0])
def test_anything_else_names_the_setting_and_the_key(value: object) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        cert_reqs(value, "broker_url", "ssl_cert_reqs")
    assert raised.value.setting == "broker_url"
    assert str(raised.value).startswith("broker_url: ssl_cert_reqs must be required")
