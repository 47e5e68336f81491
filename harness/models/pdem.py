"""PDEM, audEERING's dimensional speech-emotion model, and the SUN team's audio heads on top of it (arXiv 2403.12609).

**PDEM** ("wav2vec2-large-robust-12-ft-emotion-msp-dim", Wagner et al., arXiv 2203.07378): wav2vec2-large-robust
pruned to 12 transformer layers and fine-tuned on MSP-Podcast. Its head averages the last hidden states over time,
then dropout → dense → tanh → dropout → out_proj, giving arousal, dominance, valence (in that order, roughly 0..1).
Input: 16 kHz mono, z-normalised per window. Licence of the published weights: CC BY-NC-SA 4.0 — they are never
downloaded here; the user puts the model folder on disk and names it.

**Audio heads** (SUN team, V1/V2/V3): the wav2vec2 frame sequence (~50 frames/s) of a 4 s window goes through the
last ``trainable_blocks`` transformer layers of PDEM, then a 2-layer GRU(256) (V1) or a projection to 256 and two
Transformer encoder layers (V2, V3); per-frame outputs (the task's training outputs: VA 2 with tanh, EXPR 8 logits,
AU 12 logits) are averaged to the target steps of the window (VA and AU: 20 at 5 fps; EXPR: 4 at 1 fps). V1 and V2
train the last 2 blocks, V3 the last 4.

**Frozen / trainable split**: everything before the first trainable block is frozen, so ``frozen_features`` computes
it once per window (store it), and ``AudioHeadModel.forward`` runs only the trainable blocks and the head. The split
replicates transformers' ``Wav2Vec2Model.forward`` in eval mode exactly: feature encoder → feature projection →
zeroing of padded frames → positional conv embedding → (layer norm before the layers, unless
``do_stable_layer_norm``) → layers → (layer norm after the layers, if ``do_stable_layer_norm``, as in PDEM). The
frozen part always runs in eval mode (no SpecAugment, dropout or LayerDrop), so cached states are deterministic.

Profiles: ``paper`` loads the published checkpoint from a local folder; ``smoke`` builds a tiny random wav2vec2
(hidden 32, 6 layers, the standard 7-layer conv stack with 32 channels: 320x downsampling, ~50 frames/s;
wav2vec2-base's group norm in the conv stack, see :func:`smoke_config`).
"""

from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn import functional as F
from transformers import Wav2Vec2Config, Wav2Vec2Model, Wav2Vec2PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

from harness.errors import SpecError
from harness.tasks import TASKS, Task, get_task

PDEM_NAME = "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
PDEM_LICENCE = "CC BY-NC-SA 4.0"
PDEM_OUTPUTS: tuple[str, ...] = ("arousal", "dominance", "valence")
SAMPLE_RATE = 16000
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
FETCH = (
    f"put there the model folder of {PDEM_NAME} (config.json + pytorch_model.bin or model.safetensors), "
    f"downloaded elsewhere from the Hugging Face hub; its weights are licensed {PDEM_LICENCE} (non-commercial)"
)
HeadType = Literal["gru", "transformer"]


class PdemRegressionHead(nn.Module):
    """PDEM's head on time-averaged hidden states: dropout → dense → tanh → dropout → out_proj."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(hidden))


class PdemModel(Wav2Vec2PreTrainedModel):
    """wav2vec2 + PDEM's regression head; parameter names match the published checkpoint (``wav2vec2.*``,
    ``classifier.dense.*``, ``classifier.out_proj.*``), so ``from_pretrained(folder)`` loads it without leftovers."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = PdemRegressionHead(config)
        self.post_init()

    def forward(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(time-averaged last hidden states (B, hidden), logits (B, 3) in ``PDEM_OUTPUTS`` order).

        The average runs over every frame, padded ones included, as in audEERING's published code.
        """
        hidden = self.wav2vec2(input_values, attention_mask=attention_mask).last_hidden_state
        pooled = hidden.mean(dim=1)
        return pooled, self.classifier(pooled)


def to_valence_arousal(logits):
    """PDEM's (arousal, dominance, valence) outputs → ABAW's (valence, arousal), rescaled by ``2 * x - 1`` so that
    PDEM's nominal 0..1 range maps to ABAW's -1..1 (values outside 0..1 are not clipped).

    Works on torch tensors and numpy arrays of shape (n, 3); returns (n, 2).
    """
    valence = PDEM_OUTPUTS.index("valence")
    arousal = PDEM_OUTPUTS.index("arousal")
    return logits[..., [valence, arousal]] * 2 - 1


def normalise_windows(waveforms: torch.Tensor) -> torch.Tensor:
    """Z-normalise each row: ``(x - mean) / sqrt(var + 1e-7)`` with the population variance.

    This is the normalisation of transformers' ``Wav2Vec2FeatureExtractor`` (``do_normalize=True`` in PDEM's
    preprocessor config), i.e. what PDEM saw in training; the epsilon inside the square root keeps near-silent
    windows from being blown up.
    """
    mean = waveforms.mean(dim=-1, keepdim=True)
    variance = waveforms.var(dim=-1, keepdim=True, unbiased=False)
    return (waveforms - mean) / torch.sqrt(variance + 1e-7)


def smoke_config() -> Wav2Vec2Config:
    """A tiny wav2vec2 (hidden 32, 6 layers, 2 heads, feed-forward 64) with the real conv strides (320x, ~50 Hz),
    PDEM's stable layer norm and 3 outputs, and wav2vec2-base's conv stack norm (a per-channel group norm on the
    first conv layer only).

    Why the base model's conv norm: its frozen features are random, so what they keep of the voice is luck of the
    init. Measured (ridge probe on mean/std-pooled features entering the trainable blocks, 300 synthetic 4 s clips,
    seeds 0-3): with PDEM's layer-normed conv stack arousal r = 0.13-0.50 (seed 0: 0.13); with the group norm
    r = 0.55-0.71 and valence r < 0.1 — as the synthetic voice is built (arousal strong, valence weak).
    """
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=6,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=True,
        feat_extract_norm="group",
        num_labels=3,
        final_dropout=0.1,
        vocab_size=32,
    )


def pdem_config() -> Wav2Vec2Config:
    """The published PDEM's architecture: wav2vec2-large-robust (hidden 1024, 16 heads, feed-forward 4096, 512-channel
    layer-normed conv stack, stable layer norm) pruned to 12 layers, 3 outputs. For cost checks with random weights
    (``make paper-check``); the real weights come from the local folder :func:`load_pdem` reads."""
    return Wav2Vec2Config(
        hidden_size=1024,
        num_hidden_layers=12,
        num_attention_heads=16,
        intermediate_size=4096,
        conv_dim=(512,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=True,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        num_labels=3,
        final_dropout=0.1,
        vocab_size=32,
    )


def load_pdem(
    folder: Path | None, profile: str, seed: int, owner: str = "the audio spec's `pdem_folder` setting"
) -> PdemModel:
    """PDEM in eval mode: under ``paper`` the published checkpoint from a local ``folder`` (never downloaded);
    under ``smoke`` a tiny random model (``smoke_config``) initialised from ``seed``. ``owner`` names where the
    folder comes from, for error messages."""
    if profile == "smoke":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PdemModel(smoke_config())
        return model.eval()
    if profile != "paper":
        raise SpecError(f"PDEM: unknown profile {profile!r}; accepted: 'paper', 'smoke'")
    folder = check_pdem_folder(folder, owner)
    try:
        model, info = PdemModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise SpecError(f"PDEM weights: cannot load {folder} (from {owner}): {error}; {FETCH}") from error
    leftovers = {kind: sorted(info.get(kind) or []) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    # SpecAugment's mask vector is used only when training the whole model with masking, never here.
    leftovers["missing_keys"] = [key for key in leftovers["missing_keys"] if key != "wav2vec2.masked_spec_embed"]
    if any(leftovers.values()) or model.config.num_labels != len(PDEM_OUTPUTS):
        found = "; ".join(f"{kind}: {keys[:5]}" for kind, keys in leftovers.items() if keys)
        raise SpecError(
            f"PDEM weights: {folder} (from {owner}) is not {PDEM_NAME} (expected {len(PDEM_OUTPUTS)} outputs "
            f"{PDEM_OUTPUTS} and no missing or unexpected weights; got num_labels={model.config.num_labels}"
            f"{'; ' + found if found else ''}); {FETCH}"
        )
    return model.eval()


def check_pdem_folder(folder: Path | None, owner: str) -> Path:
    """``folder`` when it holds a ``config.json`` and a weights file (not read: planning calls this, so that a
    missing PDEM fails before anything trains), else a SpecError saying what to put where."""
    if folder is None:
        raise SpecError(f"PDEM weights: no folder given; set {owner} to a local folder and {FETCH}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SpecError(f"PDEM weights: folder {folder} (from {owner}) does not exist; create it and {FETCH}")
    if not (folder / "config.json").is_file():
        raise SpecError(f"PDEM weights: {folder} (from {owner}) has no config.json; {FETCH}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise SpecError(
            f"PDEM weights: {folder} (from {owner}) has none of {', '.join(WEIGHT_FILES)}; "
            f"found {sorted(p.name for p in folder.iterdir())}; {FETCH}"
        )
    return folder


def _check_blocks(config: Wav2Vec2Config, trainable_blocks: int) -> None:
    if not 0 <= trainable_blocks <= config.num_hidden_layers:
        raise SpecError(
            f"PDEM: trainable_blocks must be between 0 and the model's {config.num_hidden_layers} transformer "
            f"layers; got {trainable_blocks}"
        )


def conv_output_lengths(config: Wav2Vec2Config, sample_lengths: torch.Tensor) -> torch.Tensor:
    """Frames the conv feature encoder makes of ``sample_lengths`` samples (no padding: floor((n - k) / s) + 1)."""
    lengths = sample_lengths.long()
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths


def frame_mask(config: Wav2Vec2Config, sample_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, n_frames) bool: which frames come from real samples, for a right-padded (B, samples) 0/1 sample mask."""
    lengths = conv_output_lengths(config, sample_mask.sum(dim=-1))
    return torch.arange(n_frames, device=sample_mask.device)[None, :] < lengths[:, None]


class _EvalMode:
    """Put every submodule in eval mode, then restore each one's own flag (blocks may be shared with a head)."""

    def __init__(self, module: nn.Module):
        self.flags = [(m, m.training) for m in module.modules()]

    def __enter__(self):
        for module, _ in self.flags:
            module.training = False

    def __exit__(self, *exc):
        for module, flag in self.flags:
            module.training = flag


def _attention_bias(config: Wav2Vec2Config, states: torch.Tensor, mask: torch.Tensor | None):
    return create_bidirectional_mask(config=config, inputs_embeds=states, attention_mask=mask)


def frozen_features(
    pdem: PdemModel, waveforms: torch.Tensor, trainable_blocks: int, sample_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, T, hidden) states entering the first trainable block, for (B, samples) normalised 16 kHz waveforms.

    Runs, without gradients and in eval mode, the conv feature encoder, the feature projection, the positional
    conv embedding (+ layer norm when not ``do_stable_layer_norm``) and the first L - ``trainable_blocks`` layers.
    ``sample_mask`` (B, samples; 1 = real sample, right padding) is optional; pass the matching ``frame_mask`` to
    ``AudioHeadModel.forward`` then.
    """
    config = pdem.config
    _check_blocks(config, trainable_blocks)
    wav2vec2 = pdem.wav2vec2
    encoder = wav2vec2.encoder
    parameter = next(pdem.parameters())
    waveforms = waveforms.to(device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad(), _EvalMode(pdem):
        features = wav2vec2.feature_extractor(waveforms).transpose(1, 2)
        states, _ = wav2vec2.feature_projection(features)
        mask = None
        if sample_mask is not None:
            mask = frame_mask(config, sample_mask.to(states.device), states.shape[1])
            states = states.masked_fill(~mask[..., None], 0.0)
        states = states + encoder.pos_conv_embed(states)
        if not config.do_stable_layer_norm:
            states = encoder.layer_norm(states)
        bias = _attention_bias(config, states, mask)
        for layer in encoder.layers[: config.num_hidden_layers - trainable_blocks]:
            states = layer(states, attention_mask=bias)
    return states


def fine_tune_smoke_pdem(
    pdem: PdemModel,
    waveforms: torch.Tensor,
    arousal: torch.Tensor,
    valence: torch.Tensor,
    epochs: int,
    seed: int,
    layers: int = 2,
    learning_rate: float = 3e-4,
    batch_size: int = 16,
    expression: torch.Tensor | None = None,
) -> list[float]:
    """Teach a (tiny) PDEM's lower ``layers`` transformer layers to carry each clip's arousal and valence (and its
    expression class, when ``expression`` gives one per clip), in place (the model is left in eval mode); returns the
    mean training loss of each epoch.

    The smoke stand-in for audEERING's fine-tuning of wav2vec2 on MSP-Podcast, kept to the layers that every SUN
    head leaves frozen (the first L - 4), with a throw-away linear read-out on their time-averaged output (mean
    squared error against the labels in [-1, 1], plus the cross-entropy of the class). The conv feature encoder
    stays as it is; its output is computed once, so each epoch runs only the projection, the positional convolution
    and those layers. Fine-tuning the whole model instead made the top layers' output nearly constant across clips,
    and the heads trained on top of them then collapsed to a constant.
    """
    _check_blocks(pdem.config, layers)
    wav2vec2, encoder = pdem.wav2vec2, pdem.wav2vec2.encoder
    with torch.no_grad(), _EvalMode(pdem):
        features = torch.cat(
            [wav2vec2.feature_extractor(chunk).transpose(1, 2) for chunk in waveforms.split(batch_size)]
        )
    targets = torch.stack([arousal, valence], dim=1).float()
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the read-out's init, dropout
        classes = 0 if expression is None else get_task("expr").width
        readout = nn.Linear(pdem.config.hidden_size, 2 + classes)
        trained = [wav2vec2.feature_projection, encoder.pos_conv_embed, *encoder.layers[:layers]]
        if not pdem.config.do_stable_layer_norm:
            trained.append(encoder.layer_norm)
        optimizer = torch.optim.Adam([p for m in [*trained, readout] for p in m.parameters()], lr=learning_rate)
        for module in trained:
            module.train()
        history = []
        for _ in range(epochs):
            total = 0.0
            for batch in torch.randperm(len(features), generator=generator).split(batch_size):
                states, _ = wav2vec2.feature_projection(features[batch])
                states = states + encoder.pos_conv_embed(states)
                if not pdem.config.do_stable_layer_norm:
                    states = encoder.layer_norm(states)
                for layer in encoder.layers[:layers]:
                    states = layer(states)
                out = readout(states.mean(dim=1))
                loss = F.mse_loss(out[:, :2], targets[batch])
                if expression is not None:
                    loss = loss + F.cross_entropy(out[:, 2:], expression[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            history.append(total / len(features))
    pdem.eval()
    return history


class AudioHeadModel(nn.Module):
    """The trainable top of one SUN audio system: PDEM's last ``trainable_blocks`` layers (shared with ``pdem``,
    which is frozen otherwise) + a GRU or Transformer head; forward on ``frozen_features`` output gives the task's
    training outputs per step: (B, n_steps, 2) tanh valence/arousal, (B, n_steps, 8) expression logits or
    (B, n_steps, 12) action-unit logits."""

    def __init__(
        self,
        pdem: PdemModel,
        trainable_blocks: int,
        head: HeadType,
        task: Task,
        n_steps: int,
        head_dim: int = 256,
        attention_heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        config = pdem.config
        _check_blocks(config, trainable_blocks)
        if head not in ("gru", "transformer"):
            raise SpecError(f"audio head: unknown head {head!r}; accepted: 'gru', 'transformer'")
        if task not in TASKS:
            raise SpecError(f"audio head: unknown task {task!r}; accepted: {', '.join(map(repr, TASKS))}")
        if n_steps < 1:
            raise SpecError(f"audio head: n_steps must be at least 1 target per window; got {n_steps}")
        self.config = config
        self.trainable_blocks, self.head_type, self.task, self.n_steps = trainable_blocks, head, task, n_steps
        pdem.requires_grad_(False)
        first = config.num_hidden_layers - trainable_blocks
        self.blocks = nn.ModuleList(pdem.wav2vec2.encoder.layers[first:])
        # With the stable layer norm (PDEM), the encoder's final layer norm follows the trainable blocks: train it too.
        self.final_norm = pdem.wav2vec2.encoder.layer_norm if config.do_stable_layer_norm else None
        self.blocks.requires_grad_(True)
        if self.final_norm is not None:
            self.final_norm.requires_grad_(True)
        hidden = config.hidden_size
        if head == "gru":
            self.gru = nn.GRU(hidden, head_dim, num_layers=2, batch_first=True)
        else:
            self.projection = nn.Linear(hidden, head_dim)
            layer = nn.TransformerEncoderLayer(
                head_dim, attention_heads, dim_feedforward=4 * head_dim, dropout=dropout, batch_first=True
            )
            self.transformer = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.definition = get_task(task)
        self.output = nn.Linear(head_dim, self.definition.width)

    def encode(self, frozen_states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, hidden) last hidden states of wav2vec2: the trainable blocks (+ final layer norm if stable).

        In training mode the blocks use their dropout and the config's LayerDrop, as in transformers.
        """
        states = frozen_states
        bias = _attention_bias(self.config, states, frame_mask)
        for block in self.blocks:
            if self.training and self.config.layerdrop > 0 and torch.rand([]) < self.config.layerdrop:
                continue
            states = block(states, attention_mask=bias)
        return self.final_norm(states) if self.final_norm is not None else states

    def embed(self, frozen_states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, head_dim) per-frame head features (GRU outputs or Transformer outputs), before the output layer."""
        states = self.encode(frozen_states, frame_mask)
        if self.head_type == "gru":  # in float32 even under bf16 autocast on a GPU: autocast's cuDNN RNN wrapper
            # has cast RNNs to float16 whatever its dtype (torch's AutocastRNN.cpp), and no loss scaling guards that
            with torch.autocast(states.device.type, enabled=False):
                return self.gru(states.float())[0]
        padding = None if frame_mask is None else ~frame_mask
        return self.transformer(self.projection(states), src_key_padding_mask=padding)

    def forward(self, frozen_states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_steps, width): per-frame training outputs (tanh for VA) averaged to the window's target steps."""
        frames = self.definition.train_outputs(self.output(self.embed(frozen_states, frame_mask)))
        return pool_to_steps(frames, self.n_steps)


def pool_to_steps(sequence: torch.Tensor, n_steps: int) -> torch.Tensor:
    """(B, T, D) → (B, n_steps, D) by adaptive average pooling over time: step i averages frames
    floor(i T / n) .. ceil((i + 1) T / n) - 1 (neighbouring steps may share a frame when n does not divide T)."""
    return F.adaptive_avg_pool1d(sequence.transpose(1, 2), n_steps).transpose(1, 2)
