"""One registry of system kinds: ``@register_kind("video")`` on the class, ``get_kind(name)``, ``list_kinds()``.

Kind modules are imported only when a kind is asked for, so commands that never train (``abaw score``,
``abaw validate``, ``abaw --help``) never import torch. Adding a kind = one module, one line in ``KIND_MODULES``,
one YAML under ``systems/``.
"""

import difflib
import importlib
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from harness.errors import SpecError

KIND_MODULES: dict[str, str] = {
    "video": "harness.models.video",
    "audio": "harness.models.audio",
    "dynamic": "harness.models.temporal",
    "kelm": "harness.models.kelm",
    "dwf": "harness.models.fusion",
    "rf": "harness.models.fusion",
}
_REGISTRY: dict[str, type] = {}


class Kind(Protocol):
    """What the runner needs of a kind: its settings model, per-profile defaults and code version."""

    name: ClassVar[str]
    version: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]
    profiles: ClassVar[dict[str, dict[str, Any]]]


def register_kind(name: str) -> Callable[[type], type]:
    """Class decorator adding a kind to the registry; a second kind with the same name is an error."""

    def add(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"kind {name!r} is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def list_kinds() -> list[str]:
    return sorted(KIND_MODULES)


def did_you_mean(name: str, known: list[str]) -> str:
    """`` did you mean 'x'?`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def get_kind(name: str) -> type:
    """The registered class of kind ``name``, importing its module on first use."""
    if name not in KIND_MODULES:
        raise SpecError(f"unknown kind {name!r}{did_you_mean(name, list_kinds())} (known: {', '.join(list_kinds())})")
    if name not in _REGISTRY:
        importlib.import_module(KIND_MODULES[name])
    return _REGISTRY[name]
