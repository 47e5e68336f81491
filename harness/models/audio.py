"""Audio kind: audEERING's PDEM (wav2vec2) with the SUN team's V1/V2/V3 heads (ABAW 2024, arXiv 2403.12609).

Each track's voice is cut into 4 s windows with a 2 s hop (z-normalised per window); targets sit on a step grid,
5 steps a second for valence/arousal (20 a window, CCC loss), 1 a second for expressions (4 a window, weighted
cross-entropy with label smoothing) and 5 a second for action units (weighted BCE; the voice says little of them).
V1: 2-layer GRU(256) with the last 2 wav2vec2 blocks trainable; V2: 2 Transformer layers, last 2 blocks trainable;
V3: as V2 with the last 4 blocks trainable. Adam with cosine warm
restarts, early stopping on validation. Windows that are mostly non-speech (silero-vad) are dropped from training;
every frame still gets a prediction: overlapping windows are averaged per step and interpolated to frame times.

The frozen part of wav2vec2 (feature encoder and the frozen blocks) runs once per window and its output is cached
in the store, shared by every spec with the same encoder and window settings; epochs run only the trainable
blocks and the head. A video without an audio stream gives its tracks the train prior, and the run says so.

Under ``smoke`` the encoder is a tiny wav2vec2 whose lower layers are first fine-tuned on a synthetic emotional speech
corpus (:mod:`harness.data.synthetic.corpus`), as PDEM was on MSP-Podcast; the store keeps it per seed.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness import distributed
from harness.data.affwild2 import Split
from harness.data.audio import NoAudioError, decode_audio, samples_for_frames, speech_probability
from harness.data.synthetic import GENERATOR_VERSION
from harness.data.synthetic.corpus import emotional_speech_corpus
from harness.metrics import task_scores
from harness.models.context import Context
from harness.models.pdem import (
    AudioHeadModel,
    check_pdem_folder,
    conv_output_lengths,
    fine_tune_smoke_pdem,
    frozen_features,
    load_pdem,
    normalise_windows,
    pdem_config,
    smoke_config,
)
from harness.models.registry import Kind, register_kind
from harness.models.step_table import step_targets
from harness.models.training import EarlyStopping, check_converging, device, mixed_precision, seed_everything
from harness.progress import bar
from harness.steps import n_steps, step_rows, window_starts, windows_to_frames
from harness.tasks import TASKS, LossOptions, Task, TaskDef, get_task

SAMPLE_RATE = 16000
PDEM_ENV = "ABAW_PDEM"  # local folder of audEERING's wav2vec2-large-robust-12-ft-emotion-msp-dim
PDEM_OWNER = f"the audio spec's 'pdem' setting or ${PDEM_ENV}"


class TaskTraining(BaseModel):
    """Training settings of one task that differ from the spec's (unset: the spec's)."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float | None = Field(None, gt=0)
    epochs: int | None = Field(None, ge=1)
    restart_epochs: int | None = Field(None, ge=1)
    patience: int | None = Field(None, ge=1)


class AudioSettings(BaseModel):
    """Settings of the audio kind (defaults: the paper's V2 head on PDEM)."""

    model_config = ConfigDict(extra="forbid")

    encoder: Literal["pdem", "tiny"] = "pdem"  # pdem: audEERING's checkpoint from a local folder; tiny: built in code
    pdem: str | None = None  # local PDEM folder; default $ABAW_PDEM or ./weights/pdem
    tiny_corpus_clips: int = Field(400, ge=0)  # tiny encoder: synthetic emotional clips it is fine-tuned on (0: none)
    tiny_corpus_epochs: int = Field(15, ge=1)
    head: Literal["gru", "transformer"] = "transformer"
    trainable_blocks: int = Field(2, ge=0)
    window_s: float = Field(4.0, gt=0)
    hop_s: float = Field(2.0, gt=0)
    min_speech: float = Field(0.5, ge=0, le=1)  # drop training windows whose mean speech probability is below this
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    restart_epochs: int = Field(5, ge=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    patience: int = Field(5, ge=1)
    per_task: dict[str, TaskTraining] = Field(default_factory=dict)  # e.g. {expr: {learning_rate: 1e-3}}

    @field_validator("per_task")
    @classmethod
    def _registered_tasks(cls, value: dict[str, TaskTraining]) -> dict[str, TaskTraining]:
        unknown = sorted(set(value) - set(TASKS))
        if unknown:
            raise ValueError(f"per_task names unknown tasks {unknown}; registered tasks: {', '.join(TASKS)}")
        return value

    def for_task(self, task: Task) -> "AudioSettings":
        """These settings with ``per_task[task]``'s set values in place of the spec's."""
        changes = self.per_task.get(task)
        return self.model_copy(update=changes.model_dump(exclude_none=True)) if changes else self


def frozen_cache_bytes(settings: AudioSettings, seconds: float) -> float:
    """About the bytes the frozen features of ``seconds`` of tracks take in the shared cache: a window every ``hop_s``,
    each the encoder's frames of ``window_s`` seconds × its width in float16 (PDEM: 199 × 1024 for 4 s, 0.2 MB a
    second of audio at a 2 s hop; the tiny smoke encoder: 32 wide)."""
    config = pdem_config() if settings.encoder == "pdem" else smoke_config()
    samples = torch.tensor([round(settings.window_s * SAMPLE_RATE)])
    frames = int(conv_output_lengths(config, samples)[0])
    return seconds / settings.hop_s * frames * config.hidden_size * 2


def cut_windows(samples: np.ndarray, starts: np.ndarray, rate: float, window_samples: int, sample_rate: int):
    """``(len(starts), window_samples)``: the window starting at each step, ``starts[i] / rate`` seconds in, with
    silence past the end. Offsets are rounded to samples and the padding reaches the last window's end exactly (a
    length computed in float seconds fell one sample short at step 303 of 5 a second, 60.6 s into a track).

    >>> cut_windows(np.arange(5.0), np.array([0, 1, 2]), 2.0, 3, 4).tolist()
    [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [4.0, 0.0, 0.0]]
    """
    offsets = np.round(np.asarray(starts, np.float64) / rate * sample_rate).astype(np.int64)
    padded = np.pad(samples, (0, max(0, int(offsets[-1]) + window_samples - len(samples))))
    return np.stack([padded[o : o + window_samples] for o in offsets])


@register_kind("audio")
class AudioKind(Kind):
    """One audio system of one task: cached frozen wav2vec2 features, trainable top blocks and a head."""

    version = "2"
    Settings = AudioSettings
    profiles = {
        "paper": {},
        "smoke": {
            "encoder": "tiny",
            "min_speech": 0.3,  # silero hears low synthetic voices at 0.3–0.5 only
            "epochs": 8,
            "batch_size": 8,
            "learning_rate": 1e-4,  # the paper's; 1e-3 drove the tanh outputs to +1 within one Adam step (constant)
            "restart_epochs": 4,
            "patience": 4,
            # EXPR: the head learns the voice's expression cues (generator v5) from ~60 windows; at 1e-4 for 8 epochs
            # it reached macro F1 0.241 on tiny (audio_v3), at 1e-3 for 15 epochs 0.287 (VA and AU did not gain)
            "per_task": {"expr": {"learning_rate": 1e-3, "epochs": 15, "restart_epochs": 15, "patience": 8}},
        },
    }
    outputs = ("pred",)
    distributed_fit = True  # under torchrun each rank encodes its share of the tracks; rank 0 trains the head

    def __init__(self, settings: AudioSettings, task: Task, seed: int) -> None:
        self.settings = settings
        self.task = task
        self.seed = seed

    @classmethod
    def key_extra(cls, settings: AudioSettings) -> dict[str, str]:
        """Which encoder: the local PDEM folder's path (its weights are large; rename a folder to retrain), checked
        to hold a checkpoint, so that a missing one fails at planning as the video kind's weights do."""
        if settings.encoder != "pdem":
            return {}
        return {"pdem": str(check_pdem_folder(cls._pdem_folder(settings), PDEM_OWNER))}

    @staticmethod
    def _pdem_folder(settings: AudioSettings) -> Path:
        return Path(settings.pdem or os.environ.get(PDEM_ENV, "weights/pdem")).expanduser()

    # -- windows and caches -----------------------------------------------------------------------------------------
    @property
    def task_def(self) -> TaskDef:
        return get_task(self.task)

    @property
    def rate(self) -> float:
        return self.task_def.audio_step_rate

    def _grid(self, split: Split, name: str) -> tuple[int, np.ndarray]:
        """Total steps of a track and its window starts (in steps)."""
        total = n_steps(split.track(name).n_rows, split.fps(name), self.rate)
        width, hop = round(self.settings.window_s * self.rate), round(self.settings.hop_s * self.rate)
        return total, window_starts(total, width, hop)

    def _prepare(self, context: Context) -> None:
        """Build the encoder once; open the shared caches of voice activity and frozen features."""
        if hasattr(self, "pdem_"):
            return
        real = self.settings.encoder == "pdem"
        folder = self._pdem_folder(self.settings) if real else None
        self.notes_: list[str] = []
        self.pdem_ = load_pdem(folder, "paper" if real else "smoke", self.seed, owner=PDEM_OWNER).eval()
        encoder = {"encoder": str(folder)} if real else {"encoder": f"tiny-seed{self.seed}", **self._fine_tune(context)}
        window = {"window_s": self.settings.window_s, "hop_s": self.settings.hop_s, "rate": self.rate}
        material = {"version": "2", **encoder, **window, "trainable_blocks": self.settings.trainable_blocks}
        self.features_ = context.shared_cache("audio-frozen", material)
        self.vad_ = context.shared_cache("audio-vad", {"version": "1", "sample_rate": SAMPLE_RATE})
        self.encoded_seconds_ = 0.0

    def _fine_tune(self, context: Context) -> dict:
        """Fine-tune the tiny encoder on the synthetic emotional corpus (the smoke stand-in for PDEM's MSP-Podcast
        training), once per seed and corpus: the store keeps the weights. Returns what names the result."""
        s = self.settings
        if not s.tiny_corpus_clips:
            return {}
        material = {"version": "2", "generator": GENERATOR_VERSION, "seed": self.seed, "seconds": s.window_s}
        material |= {"clips": s.tiny_corpus_clips, "epochs": s.tiny_corpus_epochs}
        node = context.shared_cache("audio-tiny-pdem", material)
        if node.has("pdem.safetensors"):
            self.pdem_.load_state_dict(node.load_state("pdem.safetensors"))
        else:
            with bar() as progress:
                job = progress.add_task("audio: fine-tuning the tiny encoder on synthetic speech", total=None)
                corpus = emotional_speech_corpus(s.tiny_corpus_clips, s.window_s, SAMPLE_RATE, self.seed)
                waves = normalise_windows(torch.from_numpy(corpus.waves))
                arousal, valence = torch.from_numpy(corpus.arousal), torch.from_numpy(corpus.valence)
                classes = torch.from_numpy(corpus.expression)
                losses = fine_tune_smoke_pdem(
                    self.pdem_, waves, arousal, valence, s.tiny_corpus_epochs, self.seed, expression=classes
                )
                progress.update(job, total=1, completed=1)
            clips = s.tiny_corpus_clips
            self.notes_.append(
                f"tiny encoder fine-tuned on {clips} synthetic clips: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
            )
            node.save_state("pdem.safetensors", self.pdem_.state_dict())
        return {"fine_tuned": {key: material[key] for key in ("clips", "epochs")}}

    def _cached(self, split: Split, names: list[str]) -> None:
        """Compute the frozen features and speech probability of every track that the caches lack, video by video."""
        group = f"{self.task}-{split.name}"
        lacking_vad = {name for name in names if self.vad_.missing_tracks(self._vad_group(split, name), [name])}
        todo = sorted(set(self.features_.missing_tracks(group, names)) | lacking_vad)
        by_video: dict[str, list[str]] = {}
        for name in todo:
            by_video.setdefault(split.track(name).video, []).append(name)
        with bar() as progress:
            job = progress.add_task(f"audio {self.task}: encoding {split.name}", total=len(todo))
            for names_of_video in by_video.values():
                first = split.track(names_of_video[0])
                try:
                    audio = decode_audio(split.video_info(first.name).path, SAMPLE_RATE)
                except NoAudioError as error:
                    self.notes_.append(str(error))
                    audio = None
                for name in names_of_video:
                    self._cache_track(split, name, audio, group)
                    progress.update(job, advance=1)

    def _cache_track(self, split: Split, name: str, audio, group: str) -> None:
        """The track's voice activity per frame and the frozen features of its windows (none without a voice)."""
        n_rows, fps = split.track(name).n_rows, split.fps(name)
        _, starts = self._grid(split, name)
        window_samples = round(self.settings.window_s * SAMPLE_RATE)
        vad_group = self._vad_group(split, name)
        if audio is None:  # no audio stream: no features; the prior answers for this track
            self.vad_.write_track(vad_group, name, np.zeros(n_rows, np.float32))
            self.features_.write_track(group, name, np.zeros((0, 0, 0), np.float16))
            return
        self.vad_.write_track(vad_group, name, speech_probability(audio, n_rows, fps).astype(np.float32))
        samples = samples_for_frames(audio, n_rows, fps)
        windows = cut_windows(samples, starts, self.rate, window_samples, SAMPLE_RATE)
        on = device()
        self.pdem_.to(on)
        states = []
        with torch.no_grad():
            for chunk in np.array_split(windows, max(1, len(windows) // self.settings.batch_size)):
                waves = normalise_windows(torch.from_numpy(chunk).float().to(on))
                with mixed_precision(on):
                    states.append(
                        frozen_features(self.pdem_, waves, self.settings.trainable_blocks).float().cpu().numpy()
                    )
        self.encoded_seconds_ += len(windows) * self.settings.window_s
        self.features_.write_track(group, name, np.concatenate(states), dtype=np.float16)

    def _vad_group(self, split: Split, name: str) -> str:
        """The voice-activity cache's group of a track: ``vad``, shared by every task's track of that name, unless
        another task's track of the name wrote it there for another number of label lines (a video's annotation
        files may differ in length between the challenges, and a test track's length comes from its template):
        then ``vad-<lines>``. Each length is computed for itself, so the values never depend on which task ran
        first."""
        n_rows = split.track(name).n_rows
        if self.vad_.missing_tracks("vad", [name]) or len(self.vad_.read_track("vad", name)) == n_rows:
            return "vad"
        return f"vad-{n_rows}"

    # -- data ----------------------------------------------------------------------------------------------------------
    def _windows(self, split: Split, names: list[str], training: bool) -> tuple[list, np.ndarray, np.ndarray]:
        """(track, window) references with their step targets and masks; training drops mostly-silent windows."""
        group = f"{self.task}-{split.name}"
        width = round(self.settings.window_s * self.rate)
        refs, targets, masks = [], [], []
        for name in names:
            features = self.features_.read_track(group, name)
            if features.size == 0:
                continue
            track = split.track(name)
            total, starts = self._grid(split, name)
            rows = step_rows(total + width, self.rate, split.fps(name), track.n_rows)
            speech = self.vad_.read_track(self._vad_group(split, name), name)
            for index, start in enumerate(starts):
                window_rows = rows[start : start + width]
                labels, mask = step_targets(track.labels, window_rows, self.task_def, len(window_rows))
                spoken = speech[window_rows[window_rows >= 0]]
                if training and (not mask.any() or (len(spoken) and spoken.mean() < self.settings.min_speech)):
                    continue
                refs.append((features, index))
                targets.append(labels)
                masks.append(mask)
        return refs, np.asarray(targets), np.asarray(masks, dtype=bool)

    @staticmethod
    def _batch(refs: list, indices) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(refs[i][0][refs[i][1]], np.float32) for i in indices]))

    # -- fit -----------------------------------------------------------------------------------------------------------
    def fit(self, context: Context) -> "AudioKind":
        """Train the trainable blocks and head on cached frozen features; keep the best epoch on validation.

        Under ``torchrun`` every rank encodes its share of the train and validation tracks into the shared caches
        (the frozen encoder's pass is most of the work), then rank 0 trains the head alone: it is small, and the
        others load the model it saves."""
        s = self.settings.for_task(self.task)
        generator = seed_everything(self.seed)
        if distributed.is_main():  # fine-tunes the smoke encoder when the store lacks it, once
            self._prepare(context)
        distributed.barrier()
        self._prepare(context)
        train, validation = context.split("train"), context.split("validation")
        for split in (train, validation):
            names = list(split.names)
            self._cached(split, distributed.shard(names, [split.track(name).n_rows for name in names]))
        distributed.barrier()
        if not distributed.is_main():
            return self
        refs, targets, masks = self._windows(train, list(train.names), training=True)
        if not refs:
            raise RuntimeError(f"audio ({self.task}): no training window with speech and valid labels")
        val_refs, val_targets, val_masks = self._windows(validation, list(validation.names), training=False)
        width = round(s.window_s * self.rate)
        on = device()
        model = AudioHeadModel(self.pdem_, s.trainable_blocks, s.head, self.task, width).to(on)
        self.prior_ = self.task_def.prior(targets[masks])
        options = LossOptions(va_loss="ccc", label_smoothing=s.label_smoothing)
        criterion = self.task_def.criterion(targets[masks], options).to(on)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=s.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=max(1, s.restart_epochs))
        stopper = EarlyStopping(s.patience)
        for epoch in range(s.epochs):
            model.train()
            order = torch.randperm(len(refs), generator=generator).tolist()
            for start in range(0, len(order), s.batch_size):
                chosen = order[start : start + s.batch_size]
                with mixed_precision(on):
                    output = model(self._batch(refs, chosen).to(on)).float()
                target = self.task_def.target_tensor(targets[chosen]).to(on)
                mask = torch.from_numpy(masks[chosen]).to(on)
                loss = criterion(output[mask], target[mask])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            schedule.step()
            if stopper.update(epoch, self._evaluate(model, val_refs, val_targets, val_masks), model):
                break
        model.load_state_dict(stopper.best_state)
        self.model_ = model.eval()
        self.history_ = stopper.history
        return self

    @torch.no_grad()
    def _evaluate(self, model, refs: list, targets: np.ndarray, masks: np.ndarray) -> float:
        if not refs:
            return 0.0
        model.eval()
        on = next(model.parameters()).device
        stored = self.task_def.stored_outputs
        with mixed_precision(on):
            outputs = np.concatenate(
                [
                    stored(model(self._batch(refs, range(i, min(i + 32, len(refs)))).to(on)).float()).cpu().numpy()
                    for i in range(0, len(refs), 32)
                ]
            )
        outputs = check_converging(outputs[masks], f"audio ({self.task})")
        return task_scores(self.task, self.task_def.decide(outputs), targets[masks]).score

    # -- predict -------------------------------------------------------------------------------------------------------
    def predict(
        self, context: Context, split_name: str, tracks: list[str]
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Per track, ``pred``: one row per label line (VA values, EXPR or AU probabilities)."""
        model = self._fitted(context)
        split = context.split(split_name)
        self._cached(split, tracks)
        group = f"{self.task}-{split_name}"
        on = next(model.parameters()).device
        for name in tracks:
            features = self.features_.read_track(group, name)
            track = split.track(name)
            if features.size == 0:
                yield name, {"pred": np.tile(self.prior_, (track.n_rows, 1)).astype(np.float32)}
                continue
            with torch.no_grad(), mixed_precision(on):
                outputs = self.task_def.stored_outputs(
                    model(torch.from_numpy(np.asarray(features, np.float32)).to(on)).float()
                )
            total, starts = self._grid(split, name)
            frames = windows_to_frames(outputs.cpu().numpy(), starts, total, self.rate, track.n_rows, split.fps(name))
            yield name, {"pred": frames.astype(np.float32)}

    # -- state ---------------------------------------------------------------------------------------------------------
    def _fitted(self, context: Context):
        """The trained model; after :meth:`load_state` it is rebuilt here, where the encoder can be loaded."""
        if not hasattr(self, "model_") and hasattr(self, "saved_"):
            self._prepare(context)
            width = round(self.settings.window_s * self.rate)
            model = AudioHeadModel(self.pdem_, self.settings.trainable_blocks, self.settings.head, self.task, width)
            model.load_state_dict({k[len("model.") :]: v for k, v in self.saved_.items() if k.startswith("model.")})
            self.model_ = model.to(device()).eval()
            self.prior_ = self.saved_["prior"].numpy()
        if not hasattr(self, "model_"):
            raise RuntimeError("this audio system is not fitted: call fit() or load_state() first")
        return self.model_

    def state(self) -> dict[str, torch.Tensor]:
        if not hasattr(self, "model_") and hasattr(self, "saved_"):  # loaded, not rebuilt yet: what was loaded
            return dict(self.saved_)
        if not hasattr(self, "model_"):
            raise RuntimeError("this audio system is not fitted: call fit() or load_state() first")
        state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        return {**state, "prior": torch.from_numpy(np.ascontiguousarray(self.prior_))}

    def load_state(self, state: dict[str, torch.Tensor]) -> "AudioKind":
        self.saved_ = state
        return self
