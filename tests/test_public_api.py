"""The public API is exactly what was meant: a change to it must change this file too."""

from __future__ import annotations

import inspect
import types

import mlxtune

PUBLIC = {
    "UNLIMITED",
    "Blocks",
    "FleetResult",
    "Recommendation",
    "Snapshot",
    "SweepError",
    "SweepResult",
    "Workload",
    "allocator_churn",
    "cache_limit",
    "clear_history",
    "compare",
    "format_size",
    "history",
    "lm",
    "lm_factory",
    "load",
    "memory_limit",
    "parse_size",
    "snapshot",
    "sweep",
    "tiny_model",
    "track",
    "wired_limit",
}


def test_all_is_the_intended_api_and_sorted() -> None:
    assert set(mlxtune.__all__) == PUBLIC
    assert len(mlxtune.__all__) == len(PUBLIC)
    constants_classes_functions = sorted(mlxtune.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))
    assert list(mlxtune.__all__) == constants_classes_functions


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in mlxtune.__all__:
        obj = getattr(mlxtune, name)
        if callable(obj):
            assert inspect.getdoc(obj), f"mlxtune.{name} has no docstring"


def test_nothing_public_is_exported_by_accident() -> None:
    exposed = {
        name for name, value in vars(mlxtune).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    hooks = {"load_ipython_extension", "unload_ipython_extension"}
    assert exposed - hooks == PUBLIC


def test_ipython_extension_hooks() -> None:
    for hook in ("load_ipython_extension", "unload_ipython_extension"):
        assert list(inspect.signature(getattr(mlxtune, hook)).parameters) == ["ipython"]


def test_history_is_the_function_and_its_module_stays_importable() -> None:
    from mlxtune.history import history

    assert mlxtune.history is history
    assert list(mlxtune.history().columns[:4]) == ["cache_limit", "run", "label", "cell"]
