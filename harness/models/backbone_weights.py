"""A timm backbone's pretrained weights from a local file, loaded in full or refused.

timm loads a checkpoint non-strictly whenever the model's classifier differs from the checkpoint's (the harness
always builds its backbones headless, ``num_classes=0``), so a checkpoint of another architecture, or one whose keys
carry a wrapper's prefix (``model.``), would leave some or all of the backbone at random initialisation and say so
only in a log line. :func:`check_loaded` makes that an error: every tensor of the backbone must be in the file, and
the file may hold nothing else but the classifier, and every backbone tensor must hold the file's values after
loading. The file is compared after its timm module's own conversion (``checkpoint_filter_fn``), so a release in a
layout that conversion handles (a ViT from OpenCLIP or DINOv2) loads as timm loads it.
"""

import pickle
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from harness.errors import SpecError

# an HF hub snapshot folder of a timm model (``timm/efficientnet_b1.ra4_e3600_r240_in1k``) holds one of these
SNAPSHOT_FILES = ("model.safetensors", "pytorch_model.bin")
# what reading a torn, foreign or unpicklable checkpoint raises, besides timm's and torch's RuntimeError
LOAD_ERRORS = (
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,  # a pickled list or tensor where a state dict belongs
    EOFError,
    pickle.UnpicklingError,
    SafetensorError,
)
LISTED = 3  # keys named in an error message


def snapshot_file(folder: Path) -> Path | None:
    """The weights file of an HF snapshot folder (its ``model.safetensors`` first), None when it has none."""
    return next((folder / name for name in SNAPSHOT_FILES if (folder / name).is_file()), None)


def required_tensors(model_keys: list[str]) -> list[str]:
    """The state entries a checkpoint must hold: all but BatchNorm's step counters (many checkpoints leave them out,
    and they do not change a forward pass)."""
    return [key for key in model_keys if not key.endswith("num_batches_tracked")]


def as_timm_converts(checkpoint: dict, backbone: nn.Module) -> dict:
    """``checkpoint`` through the ``checkpoint_filter_fn`` of the backbone's timm module where it has one (timm's name
    for the conversion a module builds its models with; a model built with another one fails the value check of
    :func:`check_loaded`), unchanged otherwise (EfficientNet loads its checkpoints as they are)."""
    convert = getattr(sys.modules.get(type(backbone).__module__), "checkpoint_filter_fn", None)
    return dict(convert(checkpoint, backbone)) if callable(convert) else checkpoint


def check_loaded(backbone: nn.Module, path: Path, name: str) -> None:
    """Raise a SpecError unless every tensor of the (headless) ``backbone`` came from the checkpoint at ``path`` and
    the checkpoint holds nothing else but the classifier the backbone was built without; the checkpoint is read as
    timm reads it (``state_dict``/``model`` wrappers and ``module.`` prefixes undone) and converted as timm converts
    it (:func:`as_timm_converts`); then each backbone tensor of the checkpoint's shape must equal its value (one
    timm resized, a position embedding, is compared by name only)."""
    from timm.models import load_state_dict

    checkpoint = as_timm_converts(load_state_dict(str(path)), backbone)
    model_keys = list(backbone.state_dict())
    required = required_tensors(model_keys)
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise SpecError(
            f"{path}: {len(missing)} of the {len(required)} tensors of backbone {name!r} are not in this checkpoint "
            f"(first: {', '.join(missing[:LISTED])}; its keys begin {', '.join(list(checkpoint)[:LISTED])}): it "
            f"holds another architecture's weights, or its keys carry a prefix to strip; expected timm's checkpoint "
            f"of {name}"
        )
    heads = backbone.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    known = set(model_keys)
    extra = [key for key in checkpoint if key not in known and not any(key.startswith(f"{h}.") for h in heads)]
    if extra:
        raise SpecError(
            f"{path}: {len(extra)} tensors of this checkpoint are not in backbone {name!r} nor its classifier "
            f"(first: {', '.join(extra[:LISTED])}): it holds a larger architecture's weights; expected timm's "
            f"checkpoint of {name}"
        )
    state = backbone.state_dict()
    differ = [key for key in required if not _took(checkpoint[key], state[key])]
    if differ:
        raise SpecError(
            f"{path}: {len(differ)} of the {len(required)} tensors of backbone {name!r} did not take this checkpoint's "
            f"values (first: {', '.join(differ[:LISTED])}): timm loads {name} from another layout than this file's; "
            f"expected timm's checkpoint of {name}"
        )


def _took(saved: torch.Tensor, loaded: torch.Tensor) -> bool:
    """Whether a loaded tensor holds the checkpoint's values (one timm resized on loading counts as taken)."""
    return saved.shape != loaded.shape or torch.equal(saved.to(loaded.dtype), loaded)
