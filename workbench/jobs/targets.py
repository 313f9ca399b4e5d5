"""What a job runs and on what: the checks `wb.jobs.submit` and `workbench jobs run` make before
anything starts, public so that faces report a bad target or framework without reaching into the
service's internals.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from workbench.errors import InvalidRequest, NotFound

Framework = Literal["jax", "torch"]
JobKind = Literal["callable", "script", "notebook"]
FRAMEWORKS: tuple[str, ...] = get_args(Framework)


def check_framework(framework: str | None) -> str | None:
    """The framework a job imports in its worker (`"jax"`, `"torch"`), lower-cased; None for plain Python."""
    if framework is None or str(framework).lower() in ("", "none"):
        return None
    value = str(framework).lower()
    if value not in FRAMEWORKS:
        raise InvalidRequest(f"framework {framework!r} is not supported; valid: 'jax', 'torch' or None")
    return value


def check_target(fn_or_path: Any) -> tuple[JobKind, str, Callable[..., Any] | None]:
    """(kind, target, callable) of what a job runs: a callable, or an existing `.py`/`.ipynb` file.

    A missing file or a wrong suffix is an error of our own type now, before a slice is requested.
    """
    if callable(fn_or_path):
        module = getattr(fn_or_path, "__module__", None) or ""
        qualname = getattr(fn_or_path, "__qualname__", None) or type(fn_or_path).__name__
        return "callable", f"{module}.{qualname}".lstrip("."), fn_or_path
    if not isinstance(fn_or_path, (str, os.PathLike)):
        raise InvalidRequest(f"a job is a callable, a .py script or a .ipynb notebook, not {type(fn_or_path).__name__}")
    path = Path(fn_or_path).expanduser()
    if not path.exists():
        raise NotFound(f"script {str(fn_or_path)!r} does not exist (looked at {path.resolve()})")
    if not path.is_file():
        raise InvalidRequest(f"{path} is a directory; a job is a .py script or a .ipynb notebook")
    if path.suffix == ".py":
        return "script", str(path.resolve()), None
    if path.suffix == ".ipynb":
        return "notebook", str(path.resolve()), None
    raise InvalidRequest(f"{path} is neither a .py script nor a .ipynb notebook")
