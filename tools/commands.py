"""Running uv and other commands from the tools, failing with their output when they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


class CommandError(Exception):
    """A command exited non-zero; the message holds the command line and its output."""


def uv_executable() -> str:
    """The uv binary: the one running us under `uv run`, else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise CommandError("uv is not installed; install it (pip install uv)")
    return found


def run(command: Sequence[str], cwd: Path) -> str:
    """Run a command, return its stdout; raise CommandError with its output if it fails."""
    completed = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stderr + completed.stdout).strip()
        raise CommandError(f"`{' '.join(command)}` failed (exit {completed.returncode}):\n{output}")
    return completed.stdout
