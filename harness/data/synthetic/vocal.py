"""Vocal expression of the synthetic voice (generator version 5): voice quality and nonverbal events per class.

Why: real voices carry expression beyond valence and arousal — laughter, sobbing, gasps, a tense or breathy voice —
and until version 5 the synthetic voice carried it only through valence/arousal, so an audio model could not tell
the classes apart and audio added nothing to video on EXPR. Each expression class (ABAW order) now has a voice
quality, applied while its person talks, and a nonverbal event, sounded by the person holding the turn at random
times (Poisson, ``EVENT_RATE_HZ`` while the class holds, in talk and in pauses alike):

==========  ================================================  ===============================================
class       voice quality while talking                       event (``EVENTS``)
==========  ================================================  ===============================================
Neutral     as valence/arousal give it                        none
Anger       tense, pressed (less breath), brighter, harsh     huff: a forceful exhalation, 0.15-0.25 s
            (per-cycle amplitude jitter), +3 dB
Disgust     breathy, darker, lower                            "ugh": a low, breathy, falling grunt, 0.2-0.35 s
Fear        7 Hz tremor of pitch and loudness, higher         gasp: a rising inhalation, 0.3-0.45 s
Happiness   a little higher and brighter                      laugh: 3-6 breathy "ha" pulses at ~5 Hz
Sadness     low, dark, creaky (every other glottal pulse      sob: 2-4 jerky inhalations, each followed by a
            weakened: period doubling), -3 dB                 falling whimper
Surprise    higher, brighter                                  "oh!": a short gasp, then a vowel rising an octave
Other       as valence/arousal give it                        "hmm": a closed-mouth nasal hum, 0.3-0.6 s
==========  ================================================  ===============================================

Every draw (event times, shapes, noise, jitter) comes from the voice's own random stream, so the video frames,
crops and labels of a dataset are the same as version 4's. :func:`vocal_cues` gives the oracle what the voice carries
of each class per frame (heard quality or event), as the generator drew it.
"""

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

NUM_CLASSES = 8
EVENT_RATE_HZ = 1.5  # nonverbal events per second while a non-neutral class holds (Poisson)
TREMOR_HZ = 7.0
TREMOR_AMPLITUDE = 4.0  # loudness tremor (share) per octave of pitch tremor
CUE_SMOOTHING_S = 0.5  # the oracle's vocal cues are smoothed over this much time


@dataclass(frozen=True)
class Quality:
    """How one class changes the voice while its person talks (added to the label-driven controls)."""

    f0_octaves: float
    level_db: float
    brightness_octaves: float
    breathiness: float  # added to the voice's own share of aspiration noise (result kept in 0.02..0.9)
    tremor: float  # depth of a 7 Hz pitch tremor in octaves (loudness trembles TREMOR_AMPLITUDE times as much)
    creak: float  # share by which every other glottal pulse is weakened (period doubling)
    roughness: float  # standard deviation of a random amplitude per glottal cycle (shimmer: a harsh voice)


# fmt: off
QUALITY = (
    Quality(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),     # Neutral
    Quality(0.05, 3.0, 1.0, -0.3, 0.0, 0.0, 0.45),  # Anger
    Quality(-0.15, -1.0, -0.6, 0.45, 0.0, 0.0, 0.0),  # Disgust
    Quality(0.2, 0.0, 0.3, 0.15, 0.06, 0.0, 0.0),   # Fear
    Quality(0.15, 1.0, 0.3, 0.1, 0.0, 0.0, 0.0),    # Happiness
    Quality(-0.3, -3.0, -0.8, 0.1, 0.0, 0.7, 0.0),  # Sadness
    Quality(0.3, 1.0, 0.4, 0.0, 0.0, 0.0, 0.0),     # Surprise
    Quality(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),     # Other
)
# fmt: on
EVENTS = (None, "huff", "ugh", "gasp", "laugh", "sob", "oh", "hum")  # the nonverbal event of each class
EVENT_LEVEL = {"huff": 2.4, "ugh": 1.8, "gasp": 1.6, "laugh": 2.4, "sob": 1.6, "oh": 2.0, "hum": 1.6}  # x SPEECH_RMS
VOWELS_HZ = {"a": (730.0, 1090.0, 2440.0), "uh": (640.0, 1190.0, 2390.0), "o": (570.0, 840.0, 2410.0)}
VOWELS_HZ |= {"u": (300.0, 870.0, 2240.0), "m": (250.0, 1100.0, 2500.0)}


@dataclass(frozen=True)
class VocalEvents:
    """Nonverbal events of a recording: start and stop in seconds, the class that sounds it, 3 shape draws each."""

    start: np.ndarray
    stop: np.ndarray
    classes: np.ndarray
    shape: np.ndarray  # (events, 3) uniforms: length, pulse count / pitch, level


def quality_controls(weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per control frame, the voice-quality changes of ``weights`` (frames, classes): each class's share there."""
    table = np.array([[getattr(q, f) for f in Quality.__dataclass_fields__] for q in QUALITY])
    mixed = weights @ table
    return {name: mixed[:, j] for j, name in enumerate(Quality.__dataclass_fields__)}


def draw_events(expression: np.ndarray, fps: float, rng: np.random.Generator) -> VocalEvents:
    """Events of a recording whose per-frame class (of the person holding the turn) is ``expression``.

    Candidates come at ``EVENT_RATE_HZ`` over the whole recording; one whose frame shows a class without an event
    (Neutral) is dropped, so the draws do not depend on the classes.
    """
    seconds = len(expression) / fps
    count = int(rng.poisson(EVENT_RATE_HZ * seconds))
    start = np.sort(rng.uniform(0.0, seconds, count))
    shape = rng.random((count, 3))
    classes = np.asarray(expression)[np.minimum((start * fps).astype(np.int64), len(expression) - 1)]
    keep = np.array([EVENTS[c] is not None for c in classes], dtype=bool)
    lengths = np.array([_event_seconds(EVENTS[c], u) for c, u in zip(classes[keep], shape[keep], strict=True)])
    start = start[keep]
    return VocalEvents(start, start + lengths.reshape(-1), classes[keep].astype(np.int64), shape[keep])


def _event_seconds(kind: str, u: np.ndarray) -> float:
    """How long an event of ``kind`` with shape draws ``u`` lasts."""
    if kind == "laugh":
        return (3 + int(u[1] * 4)) * (0.17 + 0.05 * u[0])
    if kind == "sob":
        return (2 + int(u[1] * 3)) * (0.33 + 0.06 * u[0])
    spans = {"huff": (0.15, 0.25), "ugh": (0.2, 0.35), "gasp": (0.3, 0.45), "oh": (0.4, 0.6), "hum": (0.3, 0.6)}
    low, high = spans[kind]
    return low + (high - low) * u[0]


def render_events(
    events: VocalEvents, f0_at, n: int, sample_rate: int, level: float, rng: np.random.Generator
) -> np.ndarray:
    """The events' sound, ``n`` samples; ``f0_at(seconds)`` is the base pitch of who holds the turn then."""
    out = np.zeros(n)
    for start, stop, cls, u in zip(events.start, events.stop, events.classes, events.shape, strict=True):
        first = int(start * sample_rate)
        if first >= n:
            continue
        kind = EVENTS[cls]
        wave = _event_wave(kind, u, float(f0_at(start)), int((stop - start) * sample_rate), sample_rate, rng)
        wave *= level * EVENT_LEVEL[kind] * (0.8 + 0.4 * u[2])
        last = min(n, first + len(wave))
        out[first:last] += wave[: last - first]
    return out


def _event_wave(kind: str, u: np.ndarray, f0: float, length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One event at unit RMS (over its loud part), ``length`` samples."""
    if kind == "huff":
        return _noise(length, 300.0, 3000.0, rate, rng) * _envelope(length, 0.15)
    if kind == "ugh":
        f0s = np.linspace(0.75, 0.6, length) * f0
        return _voiced(f0s, "uh", 0.5, rate, rng) * _envelope(length, 0.3)
    if kind == "gasp":
        return _noise(length, 800.0, 5000.0, rate, rng) * _envelope(length, 0.75)
    if kind == "hum":
        return _low_pass(_voiced(np.full(length, 0.95 * f0), "m", 0.05, rate, rng), 900.0, rate) * _envelope(
            length, 0.3
        )
    if kind == "oh":
        gasp = int(length * 0.35)
        vowel = length - gasp
        rise = f0 * 2.0 ** np.linspace(0.1, 1.0, vowel)
        parts = [_noise(gasp, 800.0, 5000.0, rate, rng) * _envelope(gasp, 0.7) * 0.8]
        return np.concatenate(parts + [_voiced(rise, "o", 0.2, rate, rng) * _envelope(vowel, 0.4)])
    pulses = 3 + int(u[1] * 4) if kind == "laugh" else 2 + int(u[1] * 3)
    period = length // pulses
    out = np.zeros(length)
    for k in range(pulses):
        if kind == "laugh":  # "ha": an aspirated onset, then a breathy open vowel, pitch falling pulse by pulse
            h, vowel = int(period * 0.25), int(period * 0.5)
            pitch = np.full(vowel, f0 * 1.5 * 2.0 ** (-0.08 * k))
            pulse = np.concatenate(
                [
                    _noise(h, 1000.0, 4000.0, rate, rng) * 0.5,
                    _voiced(pitch, "a", 0.4, rate, rng) * _envelope(vowel, 0.3),
                ]
            )
        else:  # sob: a jerky inhalation, then a falling whimper
            h, vowel = int(period * 0.3), int(period * 0.5)
            pitch = f0 * np.linspace(1.7, 1.2, vowel)
            inhale = _noise(h, 500.0, 3000.0, rate, rng) * _envelope(h, 0.8) * 0.7
            pulse = np.concatenate([inhale, _voiced(pitch, "u", 0.5, rate, rng) * _envelope(vowel, 0.2)])
        out[k * period : k * period + len(pulse)] = pulse
    return out


def _voiced(f0: np.ndarray, vowel: str, breath: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A vowel at pitch ``f0`` (Hz per sample): glottal flow plus aspiration through three formant resonators."""
    cycle = np.mod(np.cumsum(f0 * (2.0 * np.pi / rate)), 2.0 * np.pi)
    flow = (np.pi**2 / 6.0 - np.pi * cycle / 2.0 + cycle**2 / 4.0) * np.sqrt(180.0) / np.pi**2
    source = np.sqrt(1.0 - breath**2) * flow + breath * rng.standard_normal(len(f0)) * (1.0 + 0.5 * np.cos(cycle))
    wave = np.diff(source, prepend=0.0)  # lip radiation
    for centre, bandwidth in zip(VOWELS_HZ[vowel], (80.0, 100.0, 140.0), strict=True):
        radius = np.exp(-np.pi * bandwidth / rate)
        wave = lfilter([1.0 - radius], [1.0, -2.0 * radius * np.cos(2.0 * np.pi * centre / rate), radius**2], wave)
    return _unit(wave)


def _noise(length: int, low: float, high: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise at unit RMS."""
    sos = butter(2, [low, min(high, 0.45 * rate)], btype="band", fs=rate, output="sos")
    return _unit(sosfilt(sos, rng.standard_normal(length)))


def _low_pass(x: np.ndarray, corner: float, rate: int) -> np.ndarray:
    return _unit(sosfilt(butter(2, corner, btype="low", fs=rate, output="sos"), x))


def _envelope(length: int, peak: float) -> np.ndarray:
    """A smooth rise to a maximum at ``peak`` (share of the length), then a smooth fall."""
    x = (np.arange(length) + 0.5) / max(length, 1)
    return np.sin(0.5 * np.pi * np.minimum(x / peak, (1.0 - x) / (1.0 - peak))) ** 2


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12) if len(x) else x


def vocal_cues(expression: np.ndarray, talking: np.ndarray, events: VocalEvents, fps: float) -> np.ndarray:
    """(frames, 7) what the voice carries of each non-neutral class: 1 where its quality is heard (its person talks)
    or its event sounds, smoothed over ``CUE_SMOOTHING_S``; the oracle's audio expression features."""
    n = len(expression)
    heard = np.zeros((n, NUM_CLASSES))
    talking = np.asarray(talking, dtype=bool)
    audible = np.array([quality != QUALITY[0] for quality in QUALITY])
    rows = np.flatnonzero(talking & audible[expression])
    heard[rows, expression[rows]] = 1.0
    for start, stop, cls in zip(events.start, events.stop, events.classes, strict=True):
        heard[int(start * fps) : int(np.ceil(stop * fps)), cls] = 1.0
    width = max(1, round(CUE_SMOOTHING_S * fps))
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    smoothed = np.stack([np.convolve(heard[:, c], kernel, mode="same") for c in range(1, NUM_CLASSES)], axis=1)
    return smoothed
