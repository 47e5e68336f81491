"""System specs: a YAML file per system under ``systems/``, validated against its kind's settings model.

A spec names its ``kind``, the ``tasks`` it serves, its ``inputs`` (other specs, by name), a ``seed``, settings
(every other top-level key) and per-``profiles`` overrides. Settings resolve in this order, later winning:
the kind's model defaults, the kind's defaults for the profile, the spec's top-level settings, the spec's
``profiles.<profile>`` block. Unknown keys, wrong types, unknown kinds, unknown inputs and cycles are errors that
name the file and the key, with a did-you-mean.

Sweeps: a list given for a setting that takes a single value (``window_s: [2, 4, 6]``) expands the spec into one
variant per value (several such lists: every combination), named ``dynamic_vit[window_s=4]``; each variant is a
system of its own (store key, leaderboard row). ``abaw run dynamic_vit`` runs them all, ``abaw run
'dynamic_vit[window_s=4]'`` one, and another spec takes one variant as input by that name.
"""

import hashlib
import itertools
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import SpecError
from harness.models.registry import did_you_mean, get_kind
from harness.tasks import TASKS, Task

PROFILES = ("smoke", "paper")
RESERVED = ("kind", "tasks", "inputs", "seed", "description", "profiles")


def systems_dir() -> Path:
    """Where specs live: ``$ABAW_SYSTEMS`` or ``./systems``."""
    return Path(os.environ.get("ABAW_SYSTEMS", "systems"))


@dataclass(frozen=True)
class Spec:
    """A spec file as written (settings not yet resolved against a profile)."""

    name: str
    path: Path
    kind: str
    tasks: tuple[Task, ...]
    inputs: tuple[str, ...]
    seed: int
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec with its settings validated and resolved for one profile."""

    spec: Spec
    profile: str
    settings: BaseModel
    variant: tuple[tuple[str, Any], ...] = ()  # the swept settings' values of this variant, in spec order

    @property
    def name(self) -> str:
        return self.spec.name + variant_suffix(self.variant)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def canonical(self) -> dict[str, Any]:
        """Everything that defines the system, as plain JSON data (the spec hash is taken over this)."""
        return {
            "kind": self.spec.kind,
            "tasks": sorted(self.spec.tasks),
            "inputs": list(self.spec.inputs),
            "seed": self.spec.seed,
            "profile": self.profile,
            "settings": self.settings.model_dump(mode="json"),
        }

    @property
    def spec_hash(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def available_specs(systems: Path | None = None) -> list[str]:
    folder = systems or systems_dir()
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []


def spec_path(name: str, systems: Path | None = None) -> Path:
    """The file of spec ``name`` (or ``name`` itself when it is a path to a YAML file)."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    folder = systems or systems_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = available_specs(folder)
        raise SpecError(
            f"no spec named {name!r} in {folder}/{did_you_mean(name, known)} (specs: {', '.join(known) or 'none'})"
        )
    return path


def load_spec(name: str, systems: Path | None = None) -> Spec:
    """Read and check the structure of a spec file (kind known, tasks valid, keys well-typed)."""
    path = spec_path(name, systems)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{where}: not valid YAML ({error.problem})") from None
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: a spec is a mapping of keys (kind, tasks, inputs, settings…), found {type(raw).__name__}"
        )
    if "kind" not in raw:
        raise SpecError(f"{path}: key 'kind' is missing; it names the system kind (e.g. kind: video)")
    kind = str(raw["kind"])
    get_kind(kind)  # unknown kinds fail here with a did-you-mean
    tasks = _tasks(path, raw.get("tasks", list(TASKS)))
    inputs = raw.get("inputs") or []
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise SpecError(f"{path}: key 'inputs' must be a list of spec names, found {inputs!r}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpecError(f"{path}: key 'seed' must be an integer, found {seed!r}")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise SpecError(f"{path}: key 'profiles' must map profile names to settings, found {profiles!r}")
    for profile in profiles:
        if profile not in PROFILES:
            raise SpecError(
                f"{path}: key 'profiles.{profile}': unknown profile{did_you_mean(str(profile), list(PROFILES))} "
                f"(profiles: {', '.join(PROFILES)})"
            )
    settings = {key: value for key, value in raw.items() if key not in RESERVED}
    return Spec(
        name=path.stem,
        path=path,
        kind=kind,
        tasks=tasks,
        inputs=tuple(inputs),
        seed=seed,
        description=str(raw.get("description", "")),
        settings=settings,
        profiles=profiles,
    )


def _tasks(path: Path, value: Any) -> tuple[Task, ...]:
    values = value if isinstance(value, list) else [value]
    bad = [v for v in values if v not in TASKS]
    if bad or not values:
        raise SpecError(f"{path}: key 'tasks' must list tasks among {', '.join(TASKS)}, found {value!r}")
    return tuple(t for t in TASKS if t in values)


def variant_suffix(variant: tuple[tuple[str, Any], ...]) -> str:
    """``[window_s=4,layers=2]`` for a variant, ``""`` for a spec without sweeps."""
    if not variant:
        return ""

    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return "[" + ",".join(f"{key}={text(value)}" for key, value in variant) + "]"


def resolve(spec: Spec, profile: str) -> ResolvedSpec:
    """Validate and merge the settings of ``spec`` for ``profile``; a spec that sweeps: :func:`resolve_variants`."""
    variants = resolve_variants(spec, profile)
    if len(variants) > 1:
        names = ", ".join(v.name for v in variants)
        raise SpecError(f"{spec.path}: spec {spec.name!r} sweeps into {len(variants)} variants ({names}); name one")
    return variants[0]


def resolve_variants(spec: Spec, profile: str) -> list[ResolvedSpec]:
    """Every variant of ``spec`` for ``profile``: one per combination of its swept settings (one when none)."""
    if profile not in PROFILES:
        raise SpecError(f"unknown profile {profile!r}{did_you_mean(profile, list(PROFILES))} (profiles: smoke, paper)")
    kind = get_kind(spec.kind)
    known = list(kind.Settings.model_fields)
    layers = [("", spec.settings), (f"profiles.{profile}.", spec.profiles.get(profile, {}))]
    for prefix, values in layers:
        for key in values:
            if key not in known:
                raise SpecError(
                    f"{spec.path}: key '{prefix}{key}': unknown setting of kind {spec.kind!r}"
                    f"{did_you_mean(key, known + list(RESERVED))} (settings: {', '.join(known)})"
                )
    merged = {**kind.profiles.get(profile, {}), **spec.settings, **spec.profiles.get(profile, {})}
    swept = [  # in the order of the kind's settings, so a variant's name does not depend on where a key is written
        key for key in known if isinstance(merged.get(key), list) and not _takes_list(kind.Settings, key)
    ]
    for key in swept:
        if not merged[key]:
            raise SpecError(f"{spec.path}: key '{key}' (profile {profile}): a sweep needs at least one value, found []")
    variants = []
    for values in itertools.product(*(merged[key] for key in swept)):
        variant = tuple(zip(swept, values, strict=True))
        variants.append(ResolvedSpec(spec, profile, _settings(spec, profile, {**merged, **dict(variant)}), variant))
    return variants


def _takes_list(model: type[BaseModel], key: str) -> bool:
    """Whether setting ``key`` itself holds a list (then a list value is that setting, not a sweep)."""
    annotation = model.model_fields[key].annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    return any(option in (list, tuple) or typing.get_origin(option) in (list, tuple) for option in options)


def _settings(spec: Spec, profile: str, merged: dict[str, Any]) -> BaseModel:
    try:
        return get_kind(spec.kind).Settings(**merged)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise SpecError(
            f"{spec.path}: key '{key}' (profile {profile}): {first['msg']}; found {first.get('input')!r}"
        ) from None


VARIANT_NAME = re.compile(r"^(?P<base>[^\[\]]+)(?P<variant>\[[^\[\]]*\])$")


def split_variant(name: str) -> tuple[str, str | None]:
    """``("dynamic_vit", "dynamic_vit[window_s=4]")`` for a variant's name, ``(name, None)`` for a plain one."""
    match = VARIANT_NAME.match(name)
    return (match["base"], name) if match else (name, None)


def load_graph(name: str, profile: str, systems: Path | None = None) -> list[ResolvedSpec]:
    """The spec (every variant of it, or the one variant named) and every spec it depends on, resolved, inputs
    before the specs that use them. An input must resolve to a single variant."""
    order: list[ResolvedSpec] = []
    done: set[str] = set()

    def visit(current: str, path: tuple[str, ...], owner: Spec | None) -> None:
        base, wanted = split_variant(current)
        if base in path:
            cycle = " → ".join((*path[path.index(base) :], base))
            raise SpecError(f"cycle between specs: {cycle}")
        if current in done:
            return
        try:
            spec = load_spec(base, systems)
        except SpecError as error:
            if owner is None:
                raise
            raise SpecError(f"{owner.path}: key 'inputs': {error}") from None
        for dependency in spec.inputs:
            visit(dependency, (*path, base), spec)
        variants = resolve_variants(spec, profile)
        chosen = [v for v in variants if wanted is None or v.name == wanted]
        names = ", ".join(v.name for v in variants)
        if not chosen:
            where = f"{owner.path}: key 'inputs': " if owner else ""
            raise SpecError(
                f"{where}no variant {wanted!r} of spec {base!r}"
                f"{did_you_mean(wanted, [v.name for v in variants])} (variants: {names})"
            )
        if owner is not None and len(chosen) > 1:
            raise SpecError(
                f"{owner.path}: key 'inputs': {base!r} sweeps into {len(chosen)} variants; "
                f"an input names one of: {names}"
            )
        done.add(current)
        order.extend(v for v in chosen if v.name not in {o.name for o in order})

    visit(name, (), None)
    return order
