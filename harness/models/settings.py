"""The settings model and per-profile defaults of every system kind, apart from the kinds' code.

A spec is checked and resolved against these (:mod:`harness.spec`: unknown keys, types, sweeps, profile merging)
without importing the kind modules, which import torch, timm or transformers, so that ``abaw systems`` lists every
spec in a second. Each kind class points at its own (``Settings = VideoSettings``, ``profiles = PROFILES["video"]``);
:data:`SETTINGS` maps kind names to models for :func:`harness.models.registry.kind_settings`. A setting left unset
in a spec never overrides a default: the model's default, then the profile's, then the spec's top level, then its
``profiles.<profile>`` block.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from harness.models.kernel_elm import MAX_EXACT_ROWS

Functional = Literal["mean", "max", "min", "std"]


class VideoSettings(BaseModel):
    """Settings of the static video kind (defaults: the paper's EfficientNet-B1 recipe)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "efficientnet_b1"
    image_size: int = 224
    pretrained: bool = True
    weights: str | None = None  # a local checkpoint file; default: $ABAW_WEIGHTS/<backbone>.safetensors
    embedding_dim: int = 256
    dropout: float = 0.1
    frame_step: int = 5
    eval_step: int = 5
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 5e-3
    warmup_start_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    patience: int = 10
    va_loss: Literal["rmse", "ccc"] = "rmse"
    focal_gamma: float = 2.0
    flip: bool = True
    smoothing_frames: int = 0
    workers: int = 2
    faces: Literal["organizers", "retinaface"] = "organizers"  # which crops: the release's, or harness.faces'

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """Leave ``faces`` out of the dump (hence the store key) at its default, so earlier keys stay valid."""
        data = handler(self)
        if data.get("faces") == "organizers":
            data.pop("faces")
        return data


class DynamicSettings(BaseModel):
    """Settings of the dynamic kind (defaults: the paper's 3-layer Transformer over 4 s windows)."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = 4.0
    rate: float = 5.0  # steps a second
    normalisation: Literal["minmax", "track"] = "minmax"
    temporal: Literal["transformer", "gru"] = "transformer"
    layers: int = 3
    heads: int = 8
    dropout: float = 0.1
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    patience: int = 10
    focal_gamma: float = 2.0


class AudioSettings(BaseModel):
    """Settings of the audio kind (defaults: the paper's V2 head on PDEM)."""

    model_config = ConfigDict(extra="forbid")

    encoder: Literal["pdem", "tiny"] = "pdem"  # pdem: audEERING's checkpoint from a local folder; tiny: built in code
    pdem: str | None = None  # local PDEM folder; default $ABAW_PDEM or ./weights/pdem
    tiny_corpus_clips: int = Field(400, ge=0)  # tiny encoder: synthetic emotional clips it is fine-tuned on (0: none)
    tiny_corpus_epochs: int = Field(15, ge=1)
    head: Literal["gru", "transformer"] = "transformer"
    trainable_blocks: int = 2
    window_s: float = 4.0
    hop_s: float = 2.0
    min_speech: float = 0.5  # drop training windows whose mean speech probability is below this
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-4
    restart_epochs: int = 5
    label_smoothing: float = 0.1
    patience: int = 5


class KelmSettings(BaseModel):
    """Settings of the functionals + Kernel ELM kind."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = 4.0
    rate: float = 5.0  # steps a second
    functionals: list[Functional] = Field(default_factory=lambda: ["mean", "max", "min"])
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    gamma: float | None = None  # None: 1 / number of features
    degree: int = 3
    coef0: float = 1.0
    c_grid: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0])
    class_weighted: bool = True  # EXPR: the weighted ELM, W = inverse class frequency
    nystrom_landmarks: int | None = None  # None: exact solve (refused above max_exact_rows)
    max_exact_rows: int = MAX_EXACT_ROWS
    honest_folds: int = 5


class DWFSettings(BaseModel):
    """Settings of Dirichlet-based random weighted fusion."""

    model_config = ConfigDict(extra="forbid")

    samples: int | None = Field(None, ge=1)  # random candidates; default 1000 for 2 inputs, 2000 for 3 or more
    alpha: float = Field(1.0, gt=0)  # Dirichlet concentration: 1 = uniform over the simplex
    corners: bool = True  # also try each input alone and the plain average
    entropy_gate: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)  # EXPR only:
    # input spec → threshold on its rows' entropy / log 8; rows above it are zeroed before fusing
    folds: int = Field(5, ge=2)  # video-level folds of the honest estimate
    workers: int = Field(2, ge=1)  # threads of the EXPR search


class RFSettings(BaseModel):
    """Settings of random-forest fusion."""

    model_config = ConfigDict(extra="forbid")

    trees: list[int] = Field(default_factory=lambda: [50, 100, 200], min_length=1)  # chosen by out-of-bag score
    criteria: list[str] | None = None  # default: squared_error (VA; absolute_error is slow); gini, entropy (EXPR)
    min_samples_leaf: int = Field(10, ge=1)
    max_rows: int = Field(100_000, ge=100)  # validation frames a forest trains on (a seeded subsample)
    folds: int = Field(5, ge=2)
    jobs: int = Field(2, ge=1)  # scikit-learn n_jobs


PROFILES: dict[str, dict[str, dict]] = {  # kind → profile → settings that profile sets
    "video": {
        "paper": {},
        "smoke": {
            "backbone": "test_efficientnet",
            "image_size": 64,
            "pretrained": False,
            "frame_step": 2,
            "eval_step": 3,
            "epochs": 10,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "warmup_epochs": 0.5,
            "patience": 4,
            "workers": 0,
        },
    },
    "dynamic": {"paper": {}, "smoke": {"layers": 1, "epochs": 40, "patience": 8, "learning_rate": 1e-3}},
    "audio": {
        "paper": {},
        "smoke": {
            "encoder": "tiny",
            "min_speech": 0.3,  # silero hears low synthetic voices at 0.3–0.5 only
            "epochs": 8,
            "batch_size": 8,
            "learning_rate": 1e-4,  # the paper's; 1e-3 drove the tanh outputs to +1 within one Adam step (constant)
            "restart_epochs": 4,
            "patience": 4,
        },
    },
    "kelm": {"paper": {}, "smoke": {}},
    "dwf": {"paper": {}, "smoke": {}},
    "rf": {
        "paper": {},
        "smoke": {"trees": [10, 25, 50], "max_rows": 5000, "min_samples_leaf": 5},
    },
}

SETTINGS: dict[str, type[BaseModel]] = {
    "video": VideoSettings,
    "dynamic": DynamicSettings,
    "audio": AudioSettings,
    "kelm": KelmSettings,
    "dwf": DWFSettings,
    "rf": RFSettings,
}
