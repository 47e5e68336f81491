"""One registry of system kinds and the contract a kind fulfils: ``@register_kind("video")`` on a :class:`Kind`
subclass, ``get_kind(name)``, ``build_kind(name, settings, task, seed)``, ``list_kinds()``.

Kind modules are imported only when a kind is asked for, so commands that never train (``abaw score``,
``abaw validate``, ``abaw --help``) never import torch. Adding a kind = one module, one line in ``KIND_MODULES``,
one YAML under ``systems/``. The two halves cannot disagree: registering a name that ``KIND_MODULES`` maps to
another module is an error at once, and when a module is imported for a kind it must have registered exactly the
names mapped to it (:func:`check_module`; :func:`check_registry` checks every module, as the conformance tests do).
"""

import abc
import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from harness.errors import SpecError
from harness.tasks import TASKS, Task

if TYPE_CHECKING:
    import numpy as np
    import torch

    from harness.models.context import Context

KIND_MODULES: dict[str, str] = {
    "video": "harness.models.video",
    "audio": "harness.models.audio",
    "dynamic": "harness.models.temporal",
    "kelm": "harness.models.kelm",
    "dwf": "harness.models.fusion",
    "rf": "harness.models.fusion",
}
_REGISTRY: dict[str, type["Kind"]] = {}
REQUIRED: tuple[str, ...] = ("version", "Settings", "profiles", "outputs")  # class attributes a kind must define


class Kind(abc.ABC):
    """Everything the runner, the spec loader, the preflight checks and ``abaw predict`` use of a kind.

    Required class attributes: ``version`` (bump it when the kind's results change: it is part of every store key),
    ``Settings`` (a pydantic model of the spec's settings), ``profiles`` (per-profile setting defaults, e.g.
    ``{"paper": {}, "smoke": {...}}``) and ``outputs`` (what ``predict`` yields for every track: ``"pred"``, and
    e.g. ``"emb"``). ``name`` is set by :func:`register_kind`. Required methods: ``fit``, ``predict``, ``state``,
    ``load_state``. The optional hooks below have defaults; a kind overrides the ones it needs.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]
    profiles: ClassVar[dict[str, dict[str, Any]]]
    outputs: ClassVar[tuple[str, ...]]
    validation_outputs: ClassVar[tuple[str, ...]] = ()  # validation only, e.g. HONEST (see harness.models.context)
    tasks: ClassVar[tuple[Task, ...]] = TASKS  # the tasks it serves (the conformance suite runs each of them)
    distributed_fit: ClassVar[bool] = False  # under torchrun every rank runs fit (else rank 0 alone)
    notes_: Sequence[str] = ()  # what the user should know of the last fit/predict (e.g. tracks given the prior)

    def __init__(self, settings: BaseModel, task: Task, seed: int) -> None:
        self.settings, self.task, self.seed = settings, task, seed

    @classmethod
    def key_extra(cls, settings: BaseModel) -> dict[str, str] | None:
        """Store-key material beyond the settings (e.g. a weights file's checksum); None: nothing."""
        return None

    @classmethod
    def shared_memory_bytes(cls, settings: BaseModel) -> int:
        """Bytes its training loader's worker processes keep in shared memory (their ready batches); 0: none."""
        return 0

    @abc.abstractmethod
    def fit(self, context: "Context") -> "Kind":
        """Train on the context's splits (and inputs); return self."""

    @abc.abstractmethod
    def predict(
        self, context: "Context", split_name: str, tracks: list[str]
    ) -> Iterator[tuple[str, dict[str, "np.ndarray"]]]:
        """Per track of ``tracks``, in any order: its name and one array per output name of the split, one row per
        label line (checked by the runner: :mod:`harness.models.checks`)."""

    @abc.abstractmethod
    def state(self) -> dict[str, "torch.Tensor"]:
        """The fitted model as tensors (saved as safetensors); also valid right after :meth:`load_state`."""

    @abc.abstractmethod
    def load_state(self, state: Mapping[str, "torch.Tensor"]) -> "Kind":
        """Restore what :meth:`state` returned; return self."""


def register_kind(name: str) -> Callable[[type[Kind]], type[Kind]]:
    """Class decorator adding a :class:`Kind` subclass to the registry; a second kind with the same name, a class
    that is no Kind or lacks a required attribute, or a name mapped to another module is an error."""

    def add(cls: type[Kind]) -> type[Kind]:
        if name in _REGISTRY:
            raise ValueError(f"kind {name!r} is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})")
        if not (isinstance(cls, type) and issubclass(cls, Kind)):
            raise TypeError(f"kind {name!r} ({cls.__module__}.{cls.__qualname__}) must subclass registry.Kind")
        missing = [attribute for attribute in REQUIRED if not hasattr(cls, attribute)]
        if missing:
            raise TypeError(f"kind {name!r} ({cls.__module__}.{cls.__qualname__}) lacks {', '.join(missing)}")
        mapped = KIND_MODULES.get(name)
        if mapped is not None and mapped != cls.__module__:
            raise ValueError(f"kind {name!r} is registered in {cls.__module__}, but KIND_MODULES maps it to {mapped}")
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


def check_module(module: str) -> None:
    """The imported ``module`` registered exactly the kinds ``KIND_MODULES`` maps to it."""
    mapped = sorted(name for name, where in KIND_MODULES.items() if where == module)
    registered = sorted(name for name, cls in _REGISTRY.items() if cls.__module__ == module)
    if mapped != registered:
        raise ValueError(
            f"{module}: KIND_MODULES maps {mapped} to it, but it registers {registered} (with @register_kind)"
        )


def check_registry() -> None:
    """Import every kind module and :func:`check_module` it."""
    for module in sorted(set(KIND_MODULES.values())):
        importlib.import_module(module)
        check_module(module)


def get_kind(name: str) -> type[Kind]:
    """The registered class of kind ``name``, importing (and checking) its module on first use."""
    if name not in KIND_MODULES:
        raise SpecError(f"unknown kind {name!r}{did_you_mean(name, list_kinds())} (known: {', '.join(list_kinds())})")
    if name not in _REGISTRY:
        importlib.import_module(KIND_MODULES[name])
        check_module(KIND_MODULES[name])
    return _REGISTRY[name]


def build_kind(name: str, settings: BaseModel | Mapping[str, Any], task: Task, seed: int) -> Kind:
    """A fresh instance of kind ``name`` for ``task``: ``settings`` is its resolved ``Settings`` or a mapping of
    them (validated here); a task the kind does not serve is an error."""
    cls = get_kind(name)
    if task not in cls.tasks:
        raise SpecError(f"kind {name!r} serves {', '.join(cls.tasks)}, not task {task!r}")
    if not isinstance(settings, cls.Settings):
        try:
            settings = cls.Settings(**settings)
        except (TypeError, ValidationError) as error:
            raise SpecError(f"kind {name!r}: settings {dict(settings)!r} are not its Settings: {error}") from None
    return cls(settings, task, seed)
