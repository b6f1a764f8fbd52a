# pyright: strict
"""``-A``: finding the app the way Celery finds it, so ``-A proj`` keeps working.

Forms, resolved as Celery's ``find_app`` resolves them:

- ``module:attribute``: that attribute, which must be a TaskQ app;
- ``module.attribute``: the attribute of ``module`` if it has one, else the module
  ``module.attribute`` (so ``-A proj.tasks`` works whether or not ``proj`` imports ``tasks``);
- ``module`` (or a module reached by the form above): its attribute ``app``, ``celery`` or
  ``taskq`` if it is a TaskQ app; for a package, its submodule ``taskq`` then ``celery``
  (``proj/taskq.py`` plays the part of Celery's ``proj/celery.py``); then the single TaskQ
  instance the module holds.

The working directory goes first on ``sys.path`` (after ``--workdir`` moved there), as with
Celery, so ``taskq -A proj`` finds ``./proj`` without installing it.
"""

from __future__ import annotations

import importlib
import os
import reprlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from taskq_cli.errors import CommandError

if TYPE_CHECKING:
    from taskq import TaskQ
    from taskq_cli.parser import GlobalOptions

__all__ = ["load_app", "find_app", "cwd_on_path"]

_EXAMPLE = "point at it with -A module:attribute, e.g. -A proj.tasks:app"
_ATTRIBUTES = ("app", "celery", "taskq")
_SUBMODULES = ("taskq", "celery")
_MISSING = object()


def cwd_on_path() -> None:
    """Put the working directory first on ``sys.path`` unless it is already there."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def find_app(spec: str) -> TaskQ:
    """The app ``-A spec`` names; CommandError saying what was tried if there is none."""
    spec = spec.strip()
    if not spec:
        raise CommandError(f"-A needs a module or module:attribute; {_EXAMPLE}")
    module_name, colon, attribute = spec.partition(":")
    if colon:
        module = _import(module_name)
        value = getattr(module, attribute, _MISSING)
        if value is _MISSING:
            raise CommandError(f"module {module_name!r} has no attribute {attribute!r}")
        return _expect_app(value, spec)
    value = _import_symbol(spec)
    if isinstance(value, ModuleType):
        tried: list[str] = []
        app = _app_in_module(value, tried)
        if app is None:
            raise CommandError(
                f"no taskq app found in {spec!r}: tried {', '.join(tried)}; {_EXAMPLE}"
            )
        return app
    return _expect_app(value, spec)


def _import_symbol(spec: str) -> object:
    """``a.b.c``: attribute ``c`` of module ``a.b`` if it exists, else module ``a.b.c``."""
    parent, _, name = spec.rpartition(".")
    if parent:
        value = getattr(_import(parent), name, _MISSING)
        if value is not _MISSING:
            return value
    return _import(spec)


def _app_in_module(module: ModuleType, tried: list[str]) -> TaskQ | None:
    """The app a module holds, by Celery's rules; ``tried`` collects what was looked at."""
    from taskq import TaskQ

    name = module.__name__
    for attribute in _ATTRIBUTES:
        value = getattr(module, attribute, None)
        if isinstance(value, TaskQ):
            return value
        if value is None or isinstance(value, ModuleType):
            tried.append(f"{name}.{attribute}")
        else:
            tried.append(f"{name}.{attribute} (a {type(value).__name__}, not a TaskQ app)")
    if hasattr(module, "__path__"):
        for submodule_name in _SUBMODULES:
            submodule = _try_import(f"{name}.{submodule_name}")
            if submodule is None:
                tried.append(f"module {name}.{submodule_name}")
                continue
            app = _app_in_module(submodule, tried)
            if app is not None:
                return app
    apps: dict[int, tuple[str, TaskQ]] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, TaskQ):
            apps.setdefault(id(value), (attribute, value))
    if len(apps) > 1:
        names = sorted(attribute for attribute, _ in apps.values())
        raise CommandError(
            f"{name} holds several TaskQ apps ({', '.join(names)}); choose one with "
            f"-A {name}:{names[0]}"
        )
    if apps:
        return next(iter(apps.values()))[1]
    tried.append(f"any TaskQ instance in {name}")
    return None


def _expect_app(value: object, spec: str) -> TaskQ:
    from taskq import TaskQ

    if isinstance(value, TaskQ):
        return value
    raise CommandError(f"{spec!r} is not a TaskQ app but {reprlib.repr(value)}; {_EXAMPLE}")


def _import(name: str) -> ModuleType:
    module = _try_import(name)
    if module is None:
        raise CommandError(
            f"no module named {name!r} (looked in {os.getcwd()} and on sys.path); {_EXAMPLE}"
        )
    return module


def _try_import(name: str) -> ModuleType | None:
    """The module, or None when it (or a package above it) does not exist.

    An import that fails inside the module, including a module *it* imports that is missing,
    is an error with the original one-line message: hiding it would send the user looking
    for a typo in ``-A``.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            return None
        raise _import_failed(name, exc) from exc
    except Exception as exc:
        raise _import_failed(name, exc) from exc


def _import_failed(name: str, exc: Exception) -> CommandError:
    return CommandError(f"importing {name!r} failed: {type(exc).__name__}: {exc}")


def load_app(options: GlobalOptions) -> TaskQ:
    """The app the global options describe: ``-A`` (or a default app), ``--config`` loaded
    into it, then ``-b`` and ``--result-backend`` over its settings, checked before use."""
    if options.workdir:
        try:
            os.chdir(options.workdir)
        except OSError as exc:
            raise CommandError(f"cannot change to --workdir {options.workdir!r}: {exc}") from exc
    # taskq is imported before the working directory joins sys.path, so a project module
    # that happens to be called taskq.py cannot stand in for it.
    from taskq import TaskQ

    cwd_on_path()
    app = find_app(options.app) if options.app else TaskQ()
    if options.config:
        app.config_from_object(options.config)
    if options.broker:
        app.conf.broker_url = options.broker
    if options.result_backend:
        app.conf.result_backend = options.result_backend
    app.conf.validate()
    return app
