"""Audio kind: seconds of audio encoded per second of a track, and the epoch speed-up of the cached frozen part.

    python bench/bench_audio.py                   # the smoke-sized wav2vec2 (hidden 32, 6 layers): seconds
    python bench/bench_audio.py --config large    # PDEM-shaped (wav2vec2-large, 12 layers, hidden 1024): minutes
    python bench/bench_audio.py --windows 16 --epochs 2 --seconds 30

Goal (DESIGN.md, "Performance goals"): each second of audio encoded at most twice (4 s windows, 2 s hop), not once
per frame. (a) runs the audio kind's own caching step (``AudioKind._cached``, which decodes, runs silero-vad and the
frozen wav2vec2 part once per window) on a synthetic voice track of ``--seconds`` and reads the kind's counter
``encoded_seconds_``; the reference is a 4 s window per video frame (30 fps). (b) times training epochs over the same
windows two ways in one run, alternating, best of ``--epochs``: *cached* runs the trainable blocks and the head on
frozen features computed once (``AudioHeadModel`` on ``frozen_features``), as the kind does; *full* runs the frozen
part of wav2vec2 again for every batch of every epoch, then the same trainable part. Both use Adam and the VA CCC
loss, batch 8, on the CPU or the GPU as the kind would. ``run()`` returns one dict per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from transformers import Wav2Vec2Config

from harness.data.audio import AudioTrack
from harness.data.synthetic.audio import Voice, speech_activity, synthesize_speech
from harness.models import audio as audio_module
from harness.models.audio import AudioKind, AudioSettings
from harness.models.context import Context
from harness.models.pdem import (
    AudioHeadModel,
    PdemModel,
    frozen_features,
    normalise_windows,
    pdem_config,
    smoke_config,
)
from harness.models.training import ccc_loss, device

FPS = 30.0
RATE = 16000
WINDOW_S, HOP_S = 4.0, 2.0


class _Track:
    def __init__(self, n_rows: int) -> None:
        self.name, self.video, self.n_rows = "bench", "bench", n_rows
        self.labels = np.zeros((n_rows, 2), np.float32)


class _Split:
    """One synthetic track, shaped like :class:`harness.data.affwild2.Split` as far as the audio kind looks."""

    name = "train"

    def __init__(self, n_rows: int) -> None:
        self.names = ["bench"]
        self._track = _Track(n_rows)

    def track(self, name: str) -> _Track:
        return self._track

    def fps(self, name: str) -> float:
        return FPS

    def video_info(self, name: str):
        return type("Info", (), {"path": Path("bench.mp4")})()


class _MemoryCache:
    """An in-memory :class:`harness.models.context.TrackCache`."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, str], np.ndarray] = {}

    def missing_tracks(self, group: str, tracks: list[str]) -> list[str]:
        return [t for t in tracks if (group, t) not in self.arrays]

    def write_track(self, group: str, track: str, array: np.ndarray, dtype=None) -> None:
        self.arrays[group, track] = np.asarray(array, dtype=dtype)

    def read_track(self, group: str, track: str, mmap: bool = True) -> np.ndarray:
        return self.arrays[group, track]


def voice_track(seconds: float, seed: int = 0) -> AudioTrack:
    """A synthetic talker (talk and pauses, arousal drifting) as a decoded 16 kHz track."""
    rng = np.random.default_rng(seed)
    n = round(seconds * FPS)
    arousal = np.clip(np.cumsum(rng.normal(0, 0.02, n)), -1, 1)
    samples = synthesize_speech(arousal, 0.3 * arousal, speech_activity(n, FPS, rng), Voice.random(rng), FPS, RATE, rng)
    return AudioTrack(Path("bench.mp4"), samples, RATE, RATE, 1, 0.0, 0.0)


def encoded_ratio(seconds: float, config: Wav2Vec2Config, trainable_blocks: int) -> dict:
    """(a) the kind's ``encoded_seconds_`` over the track's duration, after caching one track."""
    audio = voice_track(seconds)
    overrides = {"trainable_blocks": trainable_blocks, "tiny_corpus_clips": 0}  # the encoder is replaced below
    settings = AudioSettings(**{**AudioKind.profiles["smoke"], **overrides})
    kind = AudioKind(settings, "va", seed=0)
    caches: dict[str, _MemoryCache] = {}
    context = Context(None, "va", {}, cache=lambda name, material: caches.setdefault(name, _MemoryCache()))
    with mock.patch.object(audio_module, "decode_audio", lambda path, rate: audio):
        kind._prepare(context)
        kind.pdem_ = _seeded(config)  # the encoder under test in place of the smoke one
        start = time.perf_counter()
        kind._cached(_Split(round(seconds * FPS)), ["bench"])
        elapsed = time.perf_counter() - start
    ratio = kind.encoded_seconds_ / seconds
    return {
        "name": f"audio_seconds_encoded_per_second_{seconds:g}s_track",
        "value": round(ratio, 3),
        "unit": "s/s",
        "goal": 2.0,
        "reference": f"a {WINDOW_S:g} s window per frame at {FPS:g} fps",
        "reference_value": WINDOW_S * FPS,
        "speedup": round(WINDOW_S * FPS / ratio, 1),
        "caching_seconds": round(elapsed, 2),
        "track_seconds_cached_per_second": round(seconds / elapsed, 1),  # decoding, voice activity and the encoder
        "device": str(device()),
    }


def _seeded(config: Wav2Vec2Config) -> PdemModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PdemModel(config).eval()


def epoch_speedup(config: Wav2Vec2Config, n_windows: int, epochs: int, trainable_blocks: int, head: str) -> dict:
    """(b) best-of-``epochs`` seconds of one training epoch, cached frozen part against the full wav2vec2."""
    on = device()
    pdem = _seeded(config).to(on)
    rng = np.random.default_rng(1)
    audio = voice_track(HOP_S * (n_windows + 1), seed=1).samples
    width, hop = round(WINDOW_S * RATE), round(HOP_S * RATE)
    waves = torch.from_numpy(np.stack([audio[i * hop : i * hop + width] for i in range(n_windows)])).to(on)
    waves = normalise_windows(waves.float())
    targets = torch.from_numpy(rng.uniform(-1, 1, (n_windows, 20, 2)).astype(np.float32)).to(on)
    batch = 8
    start = time.perf_counter()
    with torch.no_grad():
        cached = torch.cat(
            [frozen_features(pdem, waves[i : i + batch], trainable_blocks) for i in range(0, n_windows, batch)]
        )
    cache_seconds = time.perf_counter() - start
    model = AudioHeadModel(pdem, trainable_blocks, head, "va", 20).to(on)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def epoch(full: bool) -> float:
        model.train()
        start = time.perf_counter()
        for i in range(0, n_windows, batch):
            states = frozen_features(pdem, waves[i : i + batch], trainable_blocks) if full else cached[i : i + batch]
            loss = ccc_loss(model(states).flatten(0, 1), targets[i : i + batch].flatten(0, 1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if on.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    times = {"cached": [], "full": []}
    for _ in range(epochs):
        times["cached"].append(epoch(False))
        times["full"].append(epoch(True))
    best = {k: min(v) for k, v in times.items()}
    return {
        "name": f"epoch_{n_windows}_windows_cached_frozen_part",
        "value": round(best["cached"], 3),
        "unit": "s/epoch",
        "goal": None,
        "reference": f"whole wav2vec2 every epoch ({config.num_hidden_layers - trainable_blocks} frozen layers + conv)",
        "reference_value": round(best["full"], 3),
        "speedup": round(best["full"] / best["cached"], 1),
        "cache_once_seconds": round(cache_seconds, 3),
        "device": str(on),
    }


def run(
    config_name: str = "smoke",
    seconds: float = 60.0,
    n_windows: int = 32,
    epochs: int = 3,
    trainable_blocks: int = 4,
    head: str = "transformer",
) -> list[dict]:
    config = pdem_config() if config_name == "large" else smoke_config()
    return [
        encoded_ratio(seconds, config, trainable_blocks),
        epoch_speedup(config, n_windows, epochs, trainable_blocks, head),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["smoke", "large"], default="smoke", help="wav2vec2 size (large: PDEM's)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the track for (a)")
    parser.add_argument("--windows", type=int, default=32, help="training windows per epoch for (b)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each kind for (b); the best is kept")
    parser.add_argument("--trainable-blocks", type=int, default=4, help="4: audio_v3; 2: audio_v1 and audio_v2")
    parser.add_argument("--head", choices=["gru", "transformer"], default="transformer")
    args = parser.parse_args()
    print(f"bench_audio: torch {torch.__version__}, {os.cpu_count()} CPU(s), device {device()}, config {args.config}")
    results = run(args.config, args.seconds, args.windows, args.epochs, args.trainable_blocks, args.head)
    for r in results:
        line = f"{r['name']:<44} {r['value']:>9} {r['unit']:<8}"
        line += f" goal {r['goal']:g}" if r["goal"] is not None else " " * 9
        line += f"  {r['reference']}: {r['reference_value']} ({r['speedup']:g}x)"
        print(line)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
