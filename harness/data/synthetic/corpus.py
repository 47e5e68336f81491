"""A labelled corpus of synthetic emotional speech: the smoke profile's stand-in for MSP-Podcast.

Why: audEERING made PDEM by fine-tuning wav2vec2 on MSP-Podcast's arousal, dominance and valence ratings (Wagner et
al., arXiv 2203.07378), so its frozen features already carry arousal when the SUN team's heads train on Aff-Wild2.
A random tiny wav2vec2 carries none that ~70 training windows of the tiny dataset can teach it; fine-tuned on this
corpus first, it plays PDEM's part at smoke size (:func:`harness.models.pdem.fine_tune_smoke_pdem`).

The clips come from their own seeded stream and share only the voice model with a synthetic dataset: other
voices, other label curves, no video. Each clip is one speaker talking with pauses (as in the dataset's videos;
talking at least through its first quarter), with arousal and valence that drift slowly around clip-level values
drawn uniformly from [-0.8, 0.8], and one expression class drawn uniformly (independently of them) whose voice
quality and nonverbal events (:mod:`.vocal`) the clip carries. A clip's targets are its labels averaged over time,
as MSP-Podcast rates turns, and its class.
"""

from dataclasses import dataclass

import numpy as np

from harness.data.synthetic.audio import Voice, speech_activity, synthesize_speech
from harness.data.synthetic.signals import smooth_process
from harness.data.synthetic.vocal import NUM_CLASSES, draw_events

LABEL_RANGE = 0.8  # clip-level arousal and valence are uniform on [-0.8, 0.8]
DRIFT = 0.15  # standard deviation of the slow drift within a clip
DRIFT_SECONDS = 2.0
CONTROL_FPS = 30.0  # the label curves' frame rate handed to the voice synthesis


@dataclass(frozen=True)
class SpeechCorpus:
    """``waves`` (clips, samples) float32 mono; ``arousal`` and ``valence`` (clips,) each clip's mean label;
    ``expression`` (clips,) each clip's class."""

    waves: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    expression: np.ndarray


def emotional_speech_corpus(clips: int, seconds: float, sample_rate: int, seed: int) -> SpeechCorpus:
    """``clips`` clips of ``seconds`` seconds at ``sample_rate``; the same arguments give the same corpus."""
    if clips < 1 or not seconds > 0:
        raise ValueError(f"emotional_speech_corpus: need clips >= 1 and seconds > 0, got {clips!r}, {seconds!r}")
    rng = np.random.default_rng([seed, 7])
    n = max(1, round(seconds * CONTROL_FPS))
    waves, arousal, valence, expression = [], [], [], []
    for _ in range(clips):
        curves = []
        for _ in range(2):
            level = rng.uniform(-LABEL_RANGE, LABEL_RANGE)
            curves.append(np.clip(level + smooth_process(n, CONTROL_FPS, rng, DRIFT_SECONDS, DRIFT), -1.0, 1.0))
        talk = speech_activity(n, CONTROL_FPS, rng)
        talk[: max(1, n // 4)] = True
        voice = Voice.random(rng)
        classes = np.full(n, rng.integers(NUM_CLASSES), dtype=np.int64)
        events = draw_events(classes, CONTROL_FPS, rng)
        wave = synthesize_speech(
            curves[0], curves[1], talk, voice, CONTROL_FPS, sample_rate, rng, expression=classes, events=events
        )
        waves.append(wave)
        arousal.append(curves[0].mean())
        valence.append(curves[1].mean())
        expression.append(classes[0])
    return SpeechCorpus(
        np.stack(waves), np.asarray(arousal, np.float32), np.asarray(valence, np.float32), np.asarray(expression)
    )
