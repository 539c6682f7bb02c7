"""Package exports imported on first use (part of the model's plumbing: the import root).

A package `__init__` that imports every module it re-exports makes `import plangate` (and every
`plangate` command) pay for LangGraph's graph, LangChain's tracers and the adapters, about a
second, before doing anything. `lazy_exports` makes a package import a public name's module when
the name is first read (PEP 562 `__getattr__`, on a module class of its own), so that a command
loads only what it uses; `from plangate import build_graph` works as before.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, cast


class _LazyPackage(ModuleType):
    _exports: Mapping[str, str]

    def __getattr__(self, name: str) -> Any:
        module = self._exports.get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(self, name, value)  # the next read is a plain attribute
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing a submodule binds it in its package under its name. Where that name is an
        # export of the submodule's own (`plangate.preflight`, the module and the function),
        # the export keeps the name, as an eager `from plangate.preflight import preflight`
        # in `__init__` would have left it.
        if isinstance(value, ModuleType) and self._exports.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._exports})


def lazy_exports(package: str, exports: Mapping[str, str]) -> None:
    """Serve each name of `exports` (name -> the module that defines it) from the package
    `package` (its `__name__`, called from its `__init__`) by importing its module on first use.
    """
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    cast("_LazyPackage", module)._exports = exports
