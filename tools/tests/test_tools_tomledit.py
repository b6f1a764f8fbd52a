"""tools/tomledit.py: text edits keep comments and layout, and refuse to change anything else."""

from __future__ import annotations

import pytest

from tomledit import TomlEditError, append_to_array, append_to_table, set_string

DOC = """\
# top comment
[project]
name = "x"  # the name
version = "0.1.0"
dependencies = [
    "a",  # first
    "b[c,d]>=1"
]
keywords = ["k1", "k2"]  # trailing
empty = []

[tool.uv.sources]
a = { workspace = true }

# about the next table
[tool.other]
list = [
    "z",
]
"""


def test_set_string_changes_one_value_and_keeps_the_comment() -> None:
    new = set_string(DOC, "project", "version", "0.2.0")
    assert new == DOC.replace('version = "0.1.0"', 'version = "0.2.0"')


def test_append_to_multiline_array_adds_the_missing_comma() -> None:
    new = append_to_array(DOC, "project", "dependencies", '"e"')
    assert '    "b[c,d]>=1",\n    "e",\n]' in new
    assert '"a",  # first' in new


def test_append_to_multiline_array_after_commented_item() -> None:
    new = append_to_array(DOC, "tool.other", "list", '"y"')
    assert 'list = [\n    "z",\n    "y",\n]' in new


@pytest.mark.parametrize(
    ("key", "expected"),
    [("keywords", 'keywords = ["k1", "k2", "k3"]  # trailing'), ("empty", 'empty = ["k3"]')],
)
def test_append_to_inline_array(key: str, expected: str) -> None:
    assert expected in append_to_array(DOC, "project", key, '"k3"')


def test_append_to_table_goes_before_the_next_tables_comment() -> None:
    new = append_to_table(DOC, "tool.uv.sources", "b = { workspace = true }")
    assert "a = { workspace = true }\nb = { workspace = true }\n\n# about the next table" in new


def test_append_to_missing_table_creates_it() -> None:
    new = append_to_table(DOC, "project.optional-dependencies", 'redis = ["taskq-redis"]')
    assert new.endswith('\n[project.optional-dependencies]\nredis = ["taskq-redis"]\n')


@pytest.mark.parametrize(
    "edit",
    [
        lambda: set_string(DOC, "project", "missing", "1"),
        lambda: set_string(DOC, "nowhere", "version", "1"),
        lambda: append_to_array(DOC, "project", "name", '"x"'),
        lambda: append_to_table(DOC, "tool.uv.sources", "a = { workspace = false }"),
        lambda: append_to_array(DOC, 'project.entry-points."x"', "k", '"v"'),
    ],
    ids=["no-key", "no-table", "not-an-array", "duplicate-key", "quoted-header"],
)
def test_edits_that_cannot_be_made_cleanly_raise(edit: object) -> None:
    assert callable(edit)
    with pytest.raises(TomlEditError):
        edit()


def test_an_edit_that_would_change_more_is_refused() -> None:
    # A '#' inside the last item is read as a comment when adding its comma: the re-parse sees
    # the item change, so the edit is refused instead of written.
    tricky = '[project]\ndeps = [\n    "a#b"\n]\n'
    with pytest.raises(TomlEditError):
        append_to_array(tricky, "project", "deps", '"b"')
