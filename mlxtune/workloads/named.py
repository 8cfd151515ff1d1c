"""Workloads named by text: a model folder or hub id, or an importable ``module:function``.

A name is what the command line takes and what another process can rebuild (an ipyparallel
engine: see :mod:`mlxtune.remote`), so both build workloads here, the same way.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["from_name", "import_factory", "is_factory_name", "model_reference", "short_name"]

_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def is_factory_name(name: str) -> bool:
    """True for ``package.module:function`` (a model id such as ``org/name`` never matches)."""
    return _FACTORY.fullmatch(name) is not None


def import_factory(spec: str, gridded: bool, what: str = "--workload") -> Callable[..., Any]:
    """``module:function`` -> the workload it returns (no grid) or a factory of grid points (with one).

    Raises ValueError naming ``what`` (the option or argument that gave ``spec``) and what is wrong.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"invalid {what} {spec!r}: expected MODULE:FUNCTION such as "
                         "mlxtune.workloads:allocator_churn")
    sys.path.insert(0, os.getcwd())  # like `python -m`: modules next to the caller are found
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} for {what}: {exc}") from None
    finally:
        sys.path.pop(0)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no {attribute!r} for {what}")
        target = getattr(target, part)
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismethod(target)):
        raise ValueError(f"{what} {spec!r} is a {type(target).__name__}, not a function returning a workload")

    def build(point: dict[str, Any] | None = None) -> Any:
        made = target(**(point or {}))
        if not callable(made):
            raise TypeError(f"{spec} returned {type(made).__name__}, not a callable workload")
        return made

    return build if gridded else build()


def from_name(name: str | os.PathLike[str], gridded: bool, what: str = "workload") -> Callable[..., Any]:
    """The workload a name stands for: ``module:function`` is imported, anything else is a model folder
    or hub id timed through mlx-lm (:func:`mlxtune.workloads.lm`, or ``lm_factory`` with a grid)."""
    from mlxtune.workloads.lm import lm, lm_factory

    text = os.fspath(name)
    if is_factory_name(text):
        return import_factory(text, gridded, what)
    model = model_reference(text)
    return lm_factory(model) if gridded else lm(model)


def short_name(name: str) -> str:
    """What a result made from a name is called: the function of ``module:function``, a model's last part."""
    if is_factory_name(name):
        return name.rpartition(":")[2]
    return Path(name.rstrip("/")).name or name


def model_reference(text: str) -> str:
    """A model folder (``~`` expanded, made absolute so another process finds it too) or a hub id;
    a path that names no folder raises ValueError."""
    model = os.path.expanduser(text)
    if Path(model).is_dir():
        return os.path.abspath(model)
    if not _HUB_ID.fullmatch(model):
        raise ValueError(f"no model folder at {text!r} (a hub id looks like org/name)")
    return model
