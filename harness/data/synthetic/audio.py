"""Speech-like audio whose acoustics follow arousal strongly and valence weakly, for the synthetic Aff-Wild2.

Why: tests, CI and demos need an audio stream that an audio model (wav2vec2-style, 4 s windows at 16 kHz) can learn
arousal from well and valence from weakly, with the structure of real recordings: talk and pauses, two people
taking turns, background noise and nuisance sounds.

How: a source-filter voice. The source is a glottal flow at a time-varying f0 (the periodic ``sum cos(k x) / k**2``,
closed form, so harmonics fall 12 dB/oct and barely alias) plus pitch-synchronous aspiration noise. Each STFT frame
(32 ms window, 8 ms hop at 16 kHz) is shaped by lip radiation, a tilt whose corner is the "brightness", and four
formant peaks that glide between per-syllable vowel targets; a syllable's consonant onset gets a fricative
resonance instead. Syllables come at ~4-5 Hz: an optional consonant (60 % of syllables: a fricative or a short
burst), a vowel with a rise-fall energy envelope, a short gap. The f0 contour has a pitch accent per syllable and
declines through each talk spurt. Where ``speaking`` is False only the background is left: coloured noise 15-25 dB
below the speech level, plus occasional hums, clicks and beeps. Everything is vectorised (no per-sample Python):
about 200x real time at 16 kHz on one core. From generator version 5 the voice also carries the expression class
of who speaks: a voice quality per class and nonverbal events (laughter, sobs, gasps, ...), see :mod:`.vocal`.

Mapping, applied by :func:`acoustic_controls` to the labels after ~100 ms smoothing. Each control is
``base * 2 ** (arousal * AROUSAL_EFFECT.x + valence * VALENCE_EFFECT.x)`` (level: ``base + ...`` in dB), so every
control rises smoothly and monotonically with both labels:

==============  ================================  ==========  ==========
control         base                              arousal     valence
==============  ================================  ==========  ==========
f0              the voice's f0                    +0.6 oct    +0.2 oct
level           ``SPEECH_RMS``                    +6 dB       +1 dB
syllable rate   ``SYLLABLE_RATE_HZ`` (4.5 Hz)     +0.6 oct    +0.05 oct
brightness      -12 dB/oct tilt above 1500 Hz     +2.0 oct    +0.4 oct
f0 spread       2 semitones (s.d. of accents)     +1.2 oct    +0.4 oct
formants        the voice's formant_shift         +0.03 oct   +0.08 oct
==============  ================================  ==========  ==========

Valence moves the controls about a fifth as far as arousal does on average, but not in proportion: little level
and tempo, more brightness and pitch movement ("smiling" voice), and formants, where it is the larger effect (spread
lips shorten the vocal tract). Were it a scaled copy of arousal, no model could tell the two apart from the voice.
Measured on the waveform (tests/test_synthetic_audio.py), arousal -0.6 -> +0.6 gives f0 x1.7, +7 dB and a vowel
spectral centroid x2.4; valence over the same span gives x1.13, +1.2 dB and x1.2.

Why the tempo, brightness and pitch-spread effects are this large (generator version 2 doubled the first two):
talk comes in spurts with pauses, so a 4 s window holds 0-4 s of speech; at version 1's effects a ridge model on
window-pooled log-band energies, trained on 8 voices and tested on 6 others with such pauses, found no arousal
(r = 0.02); at these effects it finds r = 0.74. With pauses only a cue that shows over the whole spoken part of a
window survives pooling, and the tiny dataset gives an audio model only ~70 training windows to learn from.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.signal import lfilter

from harness.data.synthetic.vocal import (
    NUM_CLASSES,
    TREMOR_AMPLITUDE,
    TREMOR_HZ,
    VocalEvents,
    quality_controls,
    render_events,
)


@dataclass(frozen=True)
class Effect:
    """How far one label moves each acoustic control per unit (octaves, or dB for the level)."""

    f0_octaves: float
    level_db: float
    rate_octaves: float
    brightness_octaves: float
    f0_spread_octaves: float
    formant_octaves: float


AROUSAL_EFFECT = Effect(0.6, 6.0, 0.6, 2.0, 1.2, 0.03)
VALENCE_EFFECT = Effect(0.2, 1.0, 0.05, 0.4, 0.4, 0.08)

SPEECH_RMS = 0.05  # voice RMS at a full syllable envelope, arousal = valence = 0; talk averages about half of it
SYLLABLE_RATE_HZ = 4.5
BRIGHTNESS_HZ = 1500.0
F0_SPREAD_OCTAVES = 2.0 / 12.0
SNR_DB_RANGE = (15.0, 25.0)
EVENT_RATE_HZ = 1.0 / 15.0  # nuisance events (hum, click, beep) per second, Poisson
LABEL_SMOOTHING_S = 0.1
DECLINATION_OCTAVES_PER_S = 0.05  # f0 falls through a talk spurt, at most 4 s worth
TURN_GAP_S = 0.08  # silence forced around a change of speaker

# Vowel formants F1..F3 in Hz for an adult male vocal tract (Peterson & Barney 1952); F4 is fixed.
# fmt: off
VOWEL_FORMANTS_HZ = np.array([
    [270, 2290, 3010], [390, 1990, 2550], [530, 1840, 2480], [660, 1720, 2410], [730, 1090, 2440],
    [570, 840, 2410], [440, 1020, 2240], [300, 870, 2240], [640, 1190, 2390], [490, 1350, 1690],
], dtype=np.float64)
# fmt: on
F4_HZ = 3500.0
FORMANT_BANDWIDTHS_HZ = np.array([80.0, 100.0, 140.0, 200.0])
FORMANT_PEAK = 8.0  # amplitude of a formant peak over its surroundings (18 dB)
FRICATIVE_HZ = np.array([2500.0, 3800.0, 5200.0, 6500.0])  # centre of the consonant noise ("sh" .. "s")


@dataclass(frozen=True)
class Voice:
    """Traits of one speaker that stay constant through a video."""

    f0: float  # base pitch in Hz, at arousal = valence = 0
    formant_shift: float  # vocal-tract scale: formants are multiplied by it (short tract > 1)
    breathiness: float  # share of aspiration noise in the source, 0..1

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Voice":
        """A plausible adult voice: low or high pitch, a vocal tract that is shorter when the pitch is higher."""
        high = rng.random() < 0.5
        f0 = float(np.clip(rng.normal(205.0, 20.0) if high else rng.normal(115.0, 15.0), 90.0, 240.0))
        shift = float(np.clip(0.85 + 0.35 * (f0 - 90.0) / 150.0 + rng.normal(0.0, 0.03), 0.85, 1.2))
        return cls(f0=f0, formant_shift=shift, breathiness=float(rng.uniform(0.05, 0.35)))


def acoustic_controls(arousal: np.ndarray, valence: np.ndarray) -> dict[str, np.ndarray]:
    """Multipliers (octave-based) and level offset (dB) the labels give each control; see the module table."""
    a, v = np.asarray(arousal, dtype=np.float64), np.asarray(valence, dtype=np.float64)
    ea, ev = AROUSAL_EFFECT, VALENCE_EFFECT

    def scale(x: float, y: float) -> np.ndarray:
        return 2.0 ** (a * x + v * y)

    return {
        "f0": scale(ea.f0_octaves, ev.f0_octaves),
        "level_db": a * ea.level_db + v * ev.level_db,
        "rate": scale(ea.rate_octaves, ev.rate_octaves),
        "brightness": scale(ea.brightness_octaves, ev.brightness_octaves),
        "f0_spread": scale(ea.f0_spread_octaves, ev.f0_spread_octaves),
        "formants": scale(ea.formant_octaves, ev.formant_octaves),
    }


def synthesize_speech(
    arousal: np.ndarray,
    valence: np.ndarray,
    speaking: np.ndarray,
    voice: Voice | Sequence[Voice],
    fps: float,
    sample_rate: int,
    rng: np.random.Generator,
    speaker: np.ndarray | None = None,
    expression: np.ndarray | None = None,
    events: VocalEvents | None = None,
) -> np.ndarray:
    """Mono float32 audio in [-1, 1] for a video whose per-frame labels are ``arousal``, ``valence``, ``speaking``.

    Frame ``i`` (0-based) covers ``[i / fps, (i + 1) / fps)``; the result has ``round(n_frames / fps * sample_rate)``
    samples. ``speaker`` (int per frame) picks who of ``voice`` (a sequence) speaks; without it ``voice`` is one Voice.
    ``expression`` (class per frame, of who speaks; default Neutral) sets the voice quality of :mod:`.vocal`, and
    ``events`` (:func:`.vocal.draw_events`) are sounded over speech and pauses alike.
    The same ``rng`` state gives the same audio.
    """
    a, v, talk, who, voices = _check_inputs(arousal, valence, speaking, voice, fps, sample_rate, speaker)
    classes = _check_expression(expression, a.shape)
    n = round(len(a) / fps * sample_rate)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    win = 2 ** round(np.log2(0.032 * sample_rate))
    hop = win // 4
    n_ctrl = -(-(n + win) // hop) + 1
    t_ctrl = (np.arange(n_ctrl) * hop - win / 2) / sample_rate  # centres of the STFT frames
    t = np.arange(n) / sample_rate

    frame = np.clip(np.floor(t_ctrl * fps).astype(np.int64), 0, len(a) - 1)
    smooth = max(1, round(LABEL_SMOOTHING_S * sample_rate / hop))
    ctl = acoustic_controls(_smooth(a[frame], smooth), _smooth(v[frame], smooth))
    shares = np.eye(NUM_CLASSES)[classes[frame]]
    quality = quality_controls(np.stack([_smooth(shares[:, c], smooth) for c in range(NUM_CLASSES)], axis=1))
    tremor = np.sin(2.0 * np.pi * TREMOR_HZ * t_ctrl)
    who_c = who[frame]
    f0_base = np.array([x.f0 for x in voices])[who_c]
    shift = np.array([x.formant_shift for x in voices])[who_c] * ctl["formants"]
    breathiness = np.clip(np.array([x.breathiness for x in voices])[who_c] + quality["breathiness"], 0.02, 0.9)

    # Talk gate: the frame mask, silent briefly around a change of speaker, with ~40 ms ramps.
    talk_c = talk[frame].astype(np.float64)
    change = np.flatnonzero(np.diff(who_c) != 0)
    gap = round(TURN_GAP_S / 2 * sample_rate / hop)
    for index in change:
        talk_c[max(0, index - gap) : index + gap + 1] = 0.0
    talk_c = _smooth(talk_c, max(1, round(0.04 * sample_rate / hop)))

    # Syllables: a phase advancing at the syllable rate; syllable k spans phase [k, k + 1).
    wobble = 2.0 ** (0.08 * _smooth_noise(n_ctrl, round(0.5 * sample_rate / hop), rng))  # tempo drifts ~6 %
    phase_c = rng.random() + np.cumsum(SYLLABLE_RATE_HZ * ctl["rate"] * wobble) * hop / sample_rate
    syl = _draw_syllables(int(phase_c[-1]) + 2, rng)
    centres = np.arange(len(syl["vowel"])) + 0.5

    # f0: voice x labels x per-syllable accent x declination through each talk spurt x a little jitter.
    accent = np.interp(phase_c, centres, syl["accent"]) * F0_SPREAD_OCTAVES * ctl["f0_spread"]
    on = talk_c > 0.5
    start = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    last_start = np.zeros(n_ctrl, dtype=np.int64)
    last_start[start] = start
    since = np.arange(n_ctrl) - np.maximum.accumulate(last_start)
    decline = -DECLINATION_OCTAVES_PER_S * np.minimum(since * hop / sample_rate, 4.0)
    jitter = 0.004 * rng.standard_normal(n_ctrl)
    f0_c = f0_base * ctl["f0"] * 2.0 ** (accent + decline + jitter + quality["f0_octaves"] + quality["tremor"] * tremor)
    bright_c = BRIGHTNESS_HZ * ctl["brightness"] * 2.0 ** quality["brightness_octaves"]
    level_c = 10.0 ** ((ctl["level_db"] + quality["level_db"]) / 20.0) * (
        1.0 + TREMOR_AMPLITUDE * quality["tremor"] * tremor
    )

    # Source, per sample: glottal flow (harmonics falling 12 dB/oct) plus aspiration noise under the vowel envelope,
    # white noise under the consonant envelope, scaled by the talk gate and the label-driven level.
    t_fine = np.arange(0.0, n / sample_rate + 0.001, 0.0005)  # envelopes on a 0.5 ms grid, then interpolated
    vowel_fine, cons_fine = _envelopes(np.interp(t_fine, t_ctrl, phase_c), syl)
    vowel_env, cons_env = np.interp(t, t_fine, vowel_fine), np.interp(t, t_fine, cons_fine)
    gain = np.interp(t, t_ctrl, talk_c * SPEECH_RMS * level_c)
    turned = np.cumsum(np.interp(t, t_ctrl, f0_c) * (2.0 * np.pi / sample_rate))
    cycle = np.mod(turned, 2.0 * np.pi)
    flow = (np.pi**2 / 6.0 - np.pi * cycle / 2.0 + cycle**2 / 4.0) * np.sqrt(180.0) / np.pi**2  # sum cos(kx)/k^2
    noise = rng.standard_normal(n)
    # Voice quality per glottal cycle: creak weakens every other pulse, roughness gives each a random amplitude.
    period = (turned // (2.0 * np.pi)).astype(np.int64)
    shimmer = rng.standard_normal(int(period[-1]) + 1)
    creak, rough = np.interp(t, t_ctrl, quality["creak"]), np.interp(t, t_ctrl, quality["roughness"])
    flow *= np.maximum(0.0, 1.0 + rough * shimmer[period]) * (1.0 - creak * (period % 2))
    pole = np.exp(-2.0 * np.pi * 300.0 / sample_rate)
    breath = (
        lfilter([1.0 - pole], [1.0, -pole], noise) * np.sqrt((1.0 + pole) / (1.0 - pole)) * (1.0 + 0.5 * np.cos(cycle))
    )
    b = np.interp(t, t_ctrl, breathiness)
    source = gain * (vowel_env * (np.sqrt(1.0 - b * b) * flow + b * breath) + cons_env * noise)

    # Filter per STFT frame: the vowel and fricative responses mixed by their share of the frame's energy.
    freqs = np.fft.rfftfreq(win, 1.0 / sample_rate)
    vowel_c, cons_c = _envelopes(phase_c, syl)
    kernel = round(win / hop) + 1
    cons_share = _smooth(cons_c**2, kernel) / (_smooth(cons_c**2, kernel) + _smooth(vowel_c**2, kernel) + 1e-9)
    formants = np.stack([np.interp(phase_c, centres, syl["formants"][:, j]) for j in range(4)], axis=1)
    response = (1.0 - cons_share[:, None]) * _vowel_filter(freqs, formants * shift[:, None], bright_c)
    fric_hz = np.interp(phase_c, centres, syl["fricative"]) * shift
    response += cons_share[:, None] * _fricative_filter(freqs, np.minimum(fric_hz, 0.42 * sample_rate))
    speech = _stft_filter(source, response.astype(np.float32), win, hop)

    out = speech + _background(n, sample_rate, rng)
    if events is not None:
        base = np.array([x.f0 for x in voices])

        def f0_at(seconds: float) -> float:
            return float(base[who[min(int(seconds * fps), len(who) - 1)]])

        out += render_events(events, f0_at, n, sample_rate, SPEECH_RMS, rng)
    return _soft_limit(out).astype(np.float32)


def speech_activity(
    n_frames: int, fps: float, rng: np.random.Generator, mean_talk_s: float = 3.0, mean_pause_s: float = 1.0
) -> np.ndarray:
    """Per-frame bool mask of alternating talk and pause spells with gamma(2) durations of the given means.

    Why semi-Markov: durations, not per-frame coin flips, give talk spurts and pauses of realistic length; the
    long-run share of talk is ``mean_talk_s / (mean_talk_s + mean_pause_s)``.
    """
    for name, value in (("mean_talk_s", mean_talk_s), ("mean_pause_s", mean_pause_s)):
        if not value > 0:
            raise ValueError(f"speech_activity: {name} must be a positive number of seconds, got {value!r}")
    if rng.random() < mean_talk_s / (mean_talk_s + mean_pause_s):  # start talking as often as talk fills the time
        return _alternate(n_frames, fps, rng, (mean_talk_s, mean_pause_s)) == 0
    return _alternate(n_frames, fps, rng, (mean_pause_s, mean_talk_s)) == 1


def turns(n_frames: int, fps: float, rng: np.random.Generator, mean_turn_s: float = 4.0) -> np.ndarray:
    """Per-frame int64 index (0 or 1) of which of two people has the turn; turns last gamma(3) times of mean_turn_s."""
    if not mean_turn_s > 0:
        raise ValueError(f"turns: mean_turn_s must be a positive number of seconds, got {mean_turn_s!r}")
    first = int(rng.integers(2))
    return (_alternate(n_frames, fps, rng, (mean_turn_s, mean_turn_s), shape=3.0) + first) % 2


def _alternate(
    n_frames: int, fps: float, rng: np.random.Generator, means: tuple[float, float], shape: float = 2.0
) -> np.ndarray:
    """State 0/1 per frame (by its centre time) of a process alternating spells of gamma durations, starting in 0."""
    if n_frames < 0 or not fps > 0:
        raise ValueError(f"need n_frames >= 0 and fps > 0, got n_frames={n_frames!r}, fps={fps!r}")
    total = n_frames / fps
    mean_pair = means[0] + means[1]
    bounds = np.zeros(0)
    while bounds.size == 0 or bounds[-1] <= total:
        spells = rng.gamma(shape, 1.0 / shape, size=(int(total / mean_pair) + 4, 2)) * np.asarray(means)
        if bounds.size == 0:
            spells[0, 0] *= rng.random()  # the video starts part-way through its first spell
        bounds = np.concatenate((bounds, np.cumsum(spells.ravel()) + (bounds[-1] if bounds.size else 0.0)))
    centre = (np.arange(n_frames) + 0.5) / fps
    return (np.searchsorted(bounds, centre, side="right") % 2).astype(np.int64)


def _check_inputs(
    arousal: np.ndarray,
    valence: np.ndarray,
    speaking: np.ndarray,
    voice: Voice | Sequence[Voice],
    fps: float,
    sample_rate: int,
    speaker: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Voice]]:
    """Validated float/bool/int arrays and the list of voices; every error names the argument and what is accepted."""
    if not fps > 0 or not sample_rate > 0:
        raise ValueError(
            f"synthesize_speech: fps and sample_rate must be positive, got fps={fps!r}, sample_rate={sample_rate!r}"
        )
    a, v = np.asarray(arousal, dtype=np.float64), np.asarray(valence, dtype=np.float64)
    talk = np.asarray(speaking)
    for name, x in (("valence", v), ("speaking", talk)):
        if x.shape != a.shape:
            raise ValueError(f"synthesize_speech: {name} must have the shape of arousal {a.shape}, got {x.shape}")
    if a.ndim != 1:
        raise ValueError(
            f"synthesize_speech: arousal, valence and speaking must be 1-D per-frame curves, got {a.shape}"
        )
    for name, x in (("arousal", a), ("valence", v)):
        bad = x[~((x >= -1.0) & (x <= 1.0))]
        if bad.size:
            raise ValueError(
                f"synthesize_speech: {name} must lie in [-1, 1] (no NaN); fill invalid (-5) frames first; "
                f"got {bad.size} values outside, the first {bad[0]:.3g}"
            )
    voices = [voice] if isinstance(voice, Voice) else list(voice)
    if not voices or not all(isinstance(x, Voice) for x in voices):
        raise ValueError(f"synthesize_speech: voice must be a Voice or a non-empty sequence of Voice, got {voice!r}")
    if speaker is None:
        if not isinstance(voice, Voice):
            raise ValueError("synthesize_speech: a sequence of voices needs speaker (which voice speaks per frame)")
        who = np.zeros(a.shape, dtype=np.int64)
    else:
        who = np.asarray(speaker)
        if who.shape != a.shape or (who.size and (who.min() < 0 or who.max() >= len(voices))):
            raise ValueError(
                f"synthesize_speech: speaker must be one int in 0..{len(voices) - 1} (one per voice) per frame, "
                f"shape {a.shape}; got shape {who.shape}, values {who.min() if who.size else None}.."
                f"{who.max() if who.size else None}"
            )
        who = who.astype(np.int64)
    return a, v, talk.astype(bool), who, voices


def _check_expression(expression: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Per-frame classes as int64 (all Neutral when None); an error names what is accepted."""
    if expression is None:
        return np.zeros(shape, dtype=np.int64)
    classes = np.asarray(expression)
    if classes.shape != shape or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(
            f"synthesize_speech: expression must be one integer class per frame, shape {shape}; "
            f"got shape {classes.shape}, dtype {classes.dtype}"
        )
    if classes.size and (classes.min() < 0 or classes.max() >= NUM_CLASSES):
        raise ValueError(
            f"synthesize_speech: expression classes must lie in 0..{NUM_CLASSES - 1}; "
            f"got {classes.min()}..{classes.max()}"
        )
    return classes.astype(np.int64)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred Hann-window moving average with edge padding (no lag, no edge droop)."""
    if width <= 1:
        return np.asarray(x, dtype=np.float64)
    kernel = np.hanning(width + 2)[1:-1]
    padded = np.pad(x, (width, width), mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="same")[width:-width]


def _smooth_noise(n: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed over ``width`` points: a slow random drift."""
    kernel = np.hanning(width + 2)[1:-1] if width > 1 else np.ones(1)
    kernel /= np.sqrt(np.sum(kernel**2))
    return np.convolve(rng.standard_normal(n + len(kernel) - 1), kernel, mode="valid")


def _draw_syllables(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-syllable random plan: vowel formants, consonant onset, vowel length, stress, accent, fricative colour."""
    vowel = rng.integers(len(VOWEL_FORMANTS_HZ), size=count)
    formants = np.concatenate((VOWEL_FORMANTS_HZ[vowel], np.full((count, 1), F4_HZ)), axis=1)
    formants *= 2.0 ** rng.normal(0.0, 0.05, size=(count, 4))
    has_cons = rng.random(count) < 0.6
    fricative = rng.random(count) < 0.6  # else a stop: a short burst
    onset = np.where(has_cons, np.where(fricative, rng.uniform(0.15, 0.3, count), rng.uniform(0.04, 0.08, count)), 0.02)
    return {
        "vowel": vowel,
        "formants": np.sort(formants, axis=1),
        "onset": onset,
        "voiced": np.minimum(rng.uniform(0.6, 0.95, count), 1.0 - onset),
        "stress": rng.uniform(0.55, 1.0, count),
        "accent": np.clip(rng.standard_normal(count), -2.0, 2.0),
        "cons_level": np.where(has_cons, rng.uniform(0.15, 0.4, count), 0.0),
        "fricative": rng.choice(FRICATIVE_HZ, size=count),
    }


def _envelopes(phase: np.ndarray, syl: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Vowel and consonant amplitude envelopes at the given syllable phases."""
    k = phase.astype(np.int64)
    frac = phase - k
    onset = syl["onset"][k]
    u = (frac - onset) / syl["voiced"][k]
    vowel = np.where((u > 0.0) & (u < 1.0), np.sin(np.pi * np.clip(u, 0.0, 1.0)) ** 0.6, 0.0) * syl["stress"][k]
    cons = np.where(frac < onset, np.sin(np.pi * frac / onset), 0.0) * syl["cons_level"][k]
    return vowel, cons


def _vowel_filter(freqs: np.ndarray, formants: np.ndarray, bright: np.ndarray) -> np.ndarray:
    """|H| per (frame, bin): lip radiation (+6 dB/oct) x tilt (-12 dB/oct above ``bright`` Hz) x formant peaks.

    Each formant is a resonance peak of ``FORMANT_PEAK`` (amplitude) over a gain of 1 on either side: a cascade of
    only four all-pole resonators would lose ~12 dB/oct above every formant, where a real vocal tract does not.
    """
    f2 = (freqs[None, :] ** 2).astype(np.float32)
    power = f2 / np.float32(1e6) / np.square(1.0 + f2 / np.square(bright[:, None]).astype(np.float32))
    for j in range(formants.shape[1]):
        r2 = f2 / np.square(formants[:, j : j + 1]).astype(np.float32)
        wide = r2 * (FORMANT_BANDWIDTHS_HZ[j] / formants[:, j : j + 1]).astype(np.float32) ** 2
        np.subtract(1.0, r2, out=r2)
        np.square(r2, out=r2)
        power *= (r2 + wide * np.float32(FORMANT_PEAK**2)) / np.add(r2, wide, out=wide)
    return np.sqrt(power / power.mean(axis=1, keepdims=True))


def _fricative_filter(freqs: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """|H| per (frame, bin) of a broad resonance at ``centre`` Hz above 1 kHz, unit mean power gain."""
    f = freqs[None, :]
    power = 1.0 / (1.0 + ((f - centre[:, None]) / (0.3 * centre[:, None])) ** 2) / (1.0 + (1000.0 / (f + 1.0)) ** 4)
    return np.sqrt(power / power.mean(axis=1, keepdims=True))


def _stft_filter(x: np.ndarray, response: np.ndarray, win: int, hop: int) -> np.ndarray:
    """Filter each STFT frame by its |H| row, keeping the frame's energy (the source carries the loudness).

    Weighted overlap-add with sqrt-Hann analysis and synthesis windows at 75 % overlap.
    """
    n = len(x)
    window = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)).astype(np.float32)
    padded = np.zeros(len(response) * hop + win, dtype=np.float32)
    padded[win : win + n] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][: len(response)] * window
    shaped = scipy.fft.irfft(scipy.fft.rfft(frames, axis=1) * response, n=win, axis=1)
    gain = np.sqrt((np.einsum("ij,ij->i", frames, frames) + 1e-20) / (np.einsum("ij,ij->i", shaped, shaped) + 1e-20))
    out_frames = (shaped * (gain[:, None] * window)).reshape(len(response), 4, hop)
    out = np.zeros((len(response) + 3, hop), dtype=np.float32)
    for q in range(4):
        out[q : q + len(response)] += out_frames[:, q]
    return out.ravel()[win : win + n] / 2.0  # sqrt-Hann squared at 75 % overlap sums to 2


def _background(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured noise at a random SNR below the nominal speech level, plus Poisson-timed hums, clicks and beeps."""
    white = rng.standard_normal(n)
    pole = np.exp(-2.0 * np.pi * rng.uniform(50.0, 400.0) / sample_rate)
    low = lfilter([np.sqrt(1.0 - pole * pole)], [1.0, -pole], white)  # unit-variance red noise
    mix = rng.uniform(0.85, 0.98)
    noise = mix * low + np.sqrt(1.0 - mix * mix) * rng.standard_normal(n)
    level = SPEECH_RMS * 0.5 * 10.0 ** (-rng.uniform(*SNR_DB_RANGE) / 20.0)  # 0.5: talk RMS / SPEECH_RMS
    noise *= level
    for _ in range(rng.poisson(EVENT_RATE_HZ * n / sample_rate)):
        kind = rng.integers(3)
        length = int(sample_rate * (rng.uniform(0.4, 2.0), rng.uniform(0.003, 0.015), rng.uniform(0.1, 0.4))[kind])
        start = int(rng.integers(max(1, n - length)))
        tt = np.arange(min(length, n - start)) / sample_rate
        if kind == 0:  # mains hum with harmonics
            mains = rng.choice([50.0, 60.0])
            wave = sum(np.sin(2 * np.pi * h * mains * tt) / h for h in range(1, 6)) * level * rng.uniform(2.0, 5.0)
        elif kind == 1:  # click: a decaying noise burst
            wave = rng.standard_normal(len(tt)) * np.exp(-tt / (length / sample_rate / 4)) * rng.uniform(0.05, 0.2)
        else:  # beep
            wave = np.sin(2 * np.pi * rng.uniform(500.0, 2000.0) * tt) * level * rng.uniform(2.0, 6.0)
        fade = np.minimum(1.0, np.minimum(tt, tt[-1] - tt) / 0.01) if kind != 1 else 1.0
        noise[start : start + len(tt)] += wave * fade
    return noise


def _soft_limit(x: np.ndarray, knee: float = 0.8) -> np.ndarray:
    """Identity below ``knee``, then a tanh curve that stays inside (-1, 1): no hard clipping."""
    mag = np.abs(x)
    over = mag > knee
    if over.any():
        x = x.copy()
        x[over] = np.sign(x[over]) * (knee + (1.0 - knee) * np.tanh((mag[over] - knee) / (1.0 - knee)))
    return x
