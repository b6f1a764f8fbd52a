"""YAML, through PyYAML's *safe* loader and dumper only.

Full YAML loading builds arbitrary Python objects from tags such as ``!!python/object/apply``,
which lets whoever wrote a message run code in the worker that reads it. The safe loader builds
only plain data (mappings, lists, strings, numbers, booleans, null, timestamps, binary, sets), and
kombu writes yaml with ``safe_dump``, so nothing a Celery producer sends is lost by it.
PyYAML is imported on first use: install it with ``pip install 'taskq[yaml]'``.
"""

from __future__ import annotations

from typing import cast

from taskq_serializers.base import DecodeError, EncodeError, ExtraNotInstalled

__all__ = ["YAMLSerializer", "YAML_SERIALIZER"]


def _pyyaml():  # the yaml module itself, typed by its stubs
    try:
        import yaml
    except ImportError as exc:
        raise ExtraNotInstalled("the yaml serializer", "PyYAML", "yaml") from exc
    return yaml


class YAMLSerializer:
    """``application/x-yaml`` in UTF-8, as kombu writes it (``yaml.safe_dump`` defaults)."""

    name = "yaml"
    content_type = "application/x-yaml"
    content_encoding = "utf-8"

    def dumps(self, obj: object, /) -> bytes:
        yaml = _pyyaml()
        try:
            text = yaml.safe_dump(obj)
        except (yaml.YAMLError, RecursionError) as exc:
            raise EncodeError(f"cannot encode as yaml: {exc}") from exc
        # safe_dump escapes everything outside ASCII, so this cannot fail.
        return text.encode("utf-8")

    def loads(self, data: bytes, /) -> object:
        yaml = _pyyaml()
        try:
            # Bytes go in as they are: PyYAML reads the BOM to tell UTF-8 from UTF-16.
            return cast("object", yaml.safe_load(data))
        # ValueError: a timestamp that matches YAML's pattern but is no real date.
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            raise DecodeError(f"cannot decode yaml: {exc}") from exc


YAML_SERIALIZER = YAMLSerializer()
