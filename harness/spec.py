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
``NAME[faces=retinaface]`` is NAME's whole graph on RetinaFace crops (:func:`load_graph`).
"""

import hashlib
import itertools
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field, replace
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
    input_names: tuple[str, ...] | None = None  # its inputs' names in its graph (a [faces=…] graph renames them)

    @property
    def name(self) -> str:
        return self.spec.name + variant_suffix(self.variant)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.spec.inputs if self.input_names is None else self.input_names

    @property
    def kind(self) -> str:
        return self.spec.kind

    def canonical(self) -> dict[str, Any]:
        """Everything that defines the system, as plain JSON data (the spec hash is taken over this)."""
        return {
            "kind": self.spec.kind,
            "tasks": sorted(self.spec.tasks),
            "inputs": list(self.inputs),
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


def is_path_like(name: str) -> bool:
    """Whether ``name`` reads as a file path rather than a spec name (a separator, ``.``/``..``, a YAML suffix)."""
    return "/" in name or "\\" in name or name in (".", "..") or name.endswith((".yaml", ".yml"))


def spec_path(name: str, systems: Path | None = None) -> Path:
    """The file of spec ``name`` (or ``name`` itself when it is a path to a YAML file).

    Any other path-like name is refused: ``../elsewhere/video_b1`` must not reach outside the systems folder."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    folder = systems or systems_dir()
    if is_path_like(name):
        raise SpecError(
            f"{name!r} is neither a spec name under {folder}/ nor an existing spec file (a path ending in .yaml); "
            "give the spec's name (e.g. video_b1) or the path of its .yaml file"
        )
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = available_specs(folder)
        raise SpecError(
            f"no spec named {name!r} in {folder}/{did_you_mean(name, known)} (specs: {', '.join(known) or 'none'})"
        )
    return path


def spec_name(path: Path, systems: Path | None = None) -> str:
    """The system name of spec file ``path``: its stem when it lies in the systems folder, else its absolute path.

    A spec given by a path elsewhere (``abaw run ../elsewhere/video_b1.yaml``) is thus recorded under a name that
    no spec of the systems folder can take (a file stem holds no ``/``), so it never borrows another's identity."""
    folder = (systems or systems_dir()).resolve()
    resolved = path.resolve()
    return path.stem if resolved.parent == folder else resolved.as_posix()


def load_spec(name: str, systems: Path | None = None) -> Spec:
    """Read and check the structure of a spec file (kind known, tasks valid, keys well-typed)."""
    path = spec_path(name, systems)
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec file ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); save it as UTF-8"
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{where}: not valid YAML ({error.problem})") from None
    except yaml.YAMLError as error:  # e.g. a NUL or another control character (yaml's ReaderError)
        raise SpecError(f"{path}: not valid YAML ({_one_line(str(error))})") from None
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: a spec is a mapping of keys (kind, tasks, inputs, settings…), found {type(raw).__name__}"
        )
    if "kind" not in raw:
        raise SpecError(f"{path}: key 'kind' is missing; it names the system kind (e.g. kind: video)")
    kind = str(raw["kind"])
    try:
        get_kind(kind)  # unknown kinds fail here with a did-you-mean
    except SpecError as error:
        raise SpecError(f"{path}: key 'kind': {error}") from None
    tasks = _tasks(path, raw.get("tasks", list(TASKS)))
    inputs = raw.get("inputs") or []
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise SpecError(f"{path}: key 'inputs' must be a list of spec names, found {inputs!r}")
    paths = [i for i in inputs if is_path_like(split_variant(i)[0])]
    if paths:
        raise SpecError(
            f"{path}: key 'inputs': {paths[0]!r} is a path; an input names a spec of the systems folder "
            "(e.g. video_b1), so that every system has one name"
        )
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
        name=spec_name(path, systems),
        path=path,
        kind=kind,
        tasks=tasks,
        inputs=tuple(inputs),
        seed=seed,
        description=str(raw.get("description", "")),
        settings=settings,
        profiles=profiles,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
GRAPH_SETTING = "faces"  # the one setting a name's brackets set for a whole graph (``dwf[faces=retinaface]``)


def split_variant(name: str) -> tuple[str, str | None]:
    """``("dynamic_vit", "dynamic_vit[window_s=4]")`` for a variant's name, ``(name, None)`` for a plain one."""
    match = VARIANT_NAME.match(name)
    return (match["base"], name) if match else (name, None)


def _split_graph_setting(name: str, base: str, wanted: str | None) -> tuple[str | None, str | None]:
    """``name``'s sweep suffix without the graph setting, and the crops it asks for: ``dwf[faces=retinaface]`` →
    ``(None, "retinaface")``; ``dynamic_vit_context[window_s=4,faces=retinaface]`` → ``("[window_s=4]",
    "retinaface")``. An unknown crop source is an error naming them."""
    if wanted is None:
        return None, None
    entries = [entry for entry in wanted[len(base) + 1 : -1].split(",") if entry]
    faces = [entry.partition("=")[2] for entry in entries if entry.partition("=")[0] == GRAPH_SETTING]
    rest = [entry for entry in entries if entry.partition("=")[0] != GRAPH_SETTING]
    if not faces:
        return wanted[len(base) :], None
    sources = typing.get_args(get_kind("video").Settings.model_fields[GRAPH_SETTING].annotation)
    if len(faces) > 1 or faces[0] not in sources:
        raise SpecError(f"{name!r}: '{GRAPH_SETTING}=' takes one of {', '.join(sources)}, found {', '.join(faces)}")
    return ("[" + ",".join(rest) + "]" if rest else None), faces[0]


def load_graph(name: str, profile: str, systems: Path | None = None) -> list[ResolvedSpec]:
    """The spec (every variant of it, or the one variant named) and every spec it depends on, resolved, inputs
    before the specs that use them. An input must resolve to a single variant.

    ``NAME[faces=retinaface]`` (or ``[faces=organizers]``) is NAME's whole graph on those crops: every node with a
    ``faces`` setting (the video kind) takes it, and that node and every node reading it, however indirectly, is
    renamed with ``faces=…`` appended to its brackets (a distinct system: store key, leaderboard row). Nodes that
    read no crops (audio) stay as they are; a graph without any is an error."""
    order: list[ResolvedSpec] = []
    seen: dict[tuple[str, str | None], list[ResolvedSpec]] = {}
    reads_crops: set[str] = set()  # graph names of the nodes with a faces setting or an input that has one

    def visit(current: str, path: tuple[str, ...], owner: Spec | None, faces: str | None) -> list[ResolvedSpec]:
        base, wanted = split_variant(current)
        if base in path:
            cycle = " → ".join((*path[path.index(base) :], base))
            raise SpecError(f"{owner.path if owner else base}: key 'inputs': cycle between specs: {cycle}")
        swept, asked = _split_graph_setting(current, base, wanted)
        faces = asked or faces
        if (current, faces) in seen:
            return seen[(current, faces)]
        try:
            spec = load_spec(base, systems)
        except SpecError as error:
            if owner is None:
                raise
            raise SpecError(f"{owner.path}: key 'inputs': {error}") from None
        inputs = [visit(dependency, (*path, base), spec, faces)[0] for dependency in spec.inputs]
        variants = resolve_variants(spec, profile)
        chosen = [v for v in variants if swept is None or variant_suffix(v.variant) == swept]
        names = ", ".join(v.name for v in variants)
        if not chosen:
            where = f"{owner.path}: key 'inputs': " if owner else ""
            raise SpecError(
                f"{where}no variant {base + (swept or '')!r} of spec {base!r}"
                f"{did_you_mean(base + (swept or ''), [v.name for v in variants])} (variants: {names})"
            )
        if owner is not None and len(chosen) > 1:
            raise SpecError(
                f"{owner.path}: key 'inputs': {base!r} sweeps into {len(chosen)} variants; "
                f"an input names one of: {names}"
            )
        chosen = [_on_crops(variant, inputs, faces) for variant in chosen]
        crops = GRAPH_SETTING in get_kind(spec.kind).Settings.model_fields or any(i.name in reads_crops for i in inputs)
        if asked and not crops:
            where = f"{owner.path}: key 'inputs': " if owner else ""
            raise SpecError(f"{where}{current!r}: {base!r} reads no face crops, so '{GRAPH_SETTING}=' changes nothing")
        if crops:
            reads_crops.update(variant.name for variant in chosen)
        seen[(current, faces)] = chosen
        order.extend(v for v in chosen if v.name not in {o.name for o in order})
        return chosen

    visit(name, (), None, None)
    return order


def _on_crops(resolved: ResolvedSpec, inputs: list[ResolvedSpec], faces: str | None) -> ResolvedSpec:
    """``resolved`` reading ``inputs`` (their graph names), its ``faces`` setting set to ``faces`` where it has one;
    renamed (``faces=…`` appended to its variant) when ``faces`` changed its settings or an input's name."""
    settings = resolved.settings
    if faces is not None and getattr(settings, GRAPH_SETTING, faces) != faces:
        settings = type(settings)(**{**settings.model_dump(), GRAPH_SETTING: faces})
    names = tuple(i.name for i in inputs)
    changed = faces is not None and (settings is not resolved.settings or names != resolved.spec.inputs)
    variant = (*resolved.variant, (GRAPH_SETTING, faces)) if changed else resolved.variant
    return replace(resolved, settings=settings, variant=variant, input_names=names)
