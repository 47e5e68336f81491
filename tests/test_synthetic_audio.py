"""The synthetic speech: shape and range, determinism, silence where nobody speaks, and the label-to-acoustics mapping
an audio model is meant to learn (arousal strongly, valence weakly), measured on the waveform itself."""

import numpy as np
import pytest
from scipy.signal import welch

from harness.data.synthetic import audio
from harness.data.synthetic.audio import (
    AROUSAL_EFFECT,
    VALENCE_EFFECT,
    Voice,
    acoustic_controls,
    speech_activity,
    synthesize_speech,
    turns,
)

FPS = 30.0
RATE = 16000
VOICE = Voice(f0=140.0, formant_shift=1.0, breathiness=0.15)


def speak(arousal: float, valence: float, seed: int, seconds: float = 4.0, voice: Voice = VOICE) -> np.ndarray:
    """Constant labels, talking throughout."""
    n = int(seconds * FPS)
    full = np.ones(n, dtype=bool)
    return synthesize_speech(
        np.full(n, arousal), np.full(n, valence), full, voice, FPS, RATE, np.random.default_rng(seed)
    )


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def loud_frames(y: np.ndarray, seconds: float = 0.04) -> np.ndarray:
    """40 ms frames (10 ms hop) within 6 dB of the loud end: the vowel nuclei."""
    width = int(seconds * RATE)
    frames = np.lib.stride_tricks.sliding_window_view(y.astype(np.float64), width)[:: RATE // 100]
    level = np.sqrt(np.mean(frames**2, axis=1))
    return frames[level > 0.5 * np.percentile(level, 95)]


def pitch(y: np.ndarray) -> float:
    """Median autocorrelation pitch (50-500 Hz) of the loud frames."""
    low, high = RATE // 500, RATE // 50
    estimates = []
    for frame in loud_frames(y):
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, mode="full")[len(frame) - 1 :]
        estimates.append(RATE / (low + int(np.argmax(ac[low:high]))))
    return float(np.median(estimates))


def centroid(y: np.ndarray) -> float:
    """Spectral centroid in Hz of the loud frames' mean power spectrum."""
    freqs, power = welch(loud_frames(y).ravel(), RATE, nperseg=512)
    return float(np.sum(freqs * power) / np.sum(power))


def mean_over_seeds(measure, arousal: float, valence: float) -> float:
    return float(np.mean([measure(speak(arousal, valence, seed)) for seed in range(3)]))


@pytest.mark.parametrize(("n_frames", "fps", "rate"), [(95, 30.0, 16000), (1, 25.0, 16000), (301, 29.97, 48000)])
def test_length_dtype_and_range(n_frames: int, fps: float, rate: int) -> None:
    rng = np.random.default_rng(1)
    arousal = np.clip(np.linspace(-1.0, 1.0, n_frames) * 1.5, -1.0, 1.0)
    y = synthesize_speech(arousal, arousal[::-1], np.ones(n_frames, dtype=bool), Voice.random(rng), fps, rate, rng)
    assert y.dtype == np.float32
    assert y.shape == (round(n_frames / fps * rate),)
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0


def test_empty_input_gives_empty_audio() -> None:
    empty = np.zeros(0)
    y = synthesize_speech(empty, empty, empty.astype(bool), VOICE, FPS, RATE, np.random.default_rng(0))
    assert y.shape == (0,) and y.dtype == np.float32


def test_loudest_labels_stay_inside_full_scale() -> None:
    loudest = Voice(f0=240.0, formant_shift=1.2, breathiness=0.35)
    y = speak(1.0, 1.0, seed=0, seconds=20.0, voice=loudest)
    assert 0.1 < np.abs(y).max() <= 1.0


def test_same_rng_state_same_audio() -> None:
    assert np.array_equal(speak(0.3, -0.2, seed=7), speak(0.3, -0.2, seed=7))
    assert not np.array_equal(speak(0.3, -0.2, seed=7), speak(0.3, -0.2, seed=8))


@pytest.mark.parametrize("seed", range(5))
def test_only_background_where_nobody_speaks(seed: int) -> None:
    n = int(6 * FPS)
    talk = np.arange(n) >= n // 2
    y = synthesize_speech(np.zeros(n), np.zeros(n), talk, VOICE, FPS, RATE, np.random.default_rng(seed))
    half, margin = len(y) // 2, RATE // 20
    quiet, speech = rms(y[: half - margin]), rms(y[half + margin :])
    assert quiet < 0.01  # background: about -50 dBFS
    assert speech / quiet > 4.0  # background sits 15-25 dB below speech


def test_arousal_raises_pitch_and_level_as_documented() -> None:
    levels = {a: mean_over_seeds(rms, a, 0.0) for a in (-0.6, 0.0, 0.6)}
    pitches = {a: mean_over_seeds(pitch, a, 0.0) for a in (-0.6, 0.0, 0.6)}
    assert levels[-0.6] < levels[0.0] < levels[0.6]
    assert pitches[-0.6] < pitches[0.0] < pitches[0.6]
    # f0 follows 2 ** (0.6 * arousal) and the level 6 dB per unit; measured through syllables, accents and noise.
    assert pitches[0.6] / pitches[-0.6] == pytest.approx(2.0 ** (1.2 * AROUSAL_EFFECT.f0_octaves), rel=0.12)
    assert 20 * np.log10(levels[0.6] / levels[-0.6]) == pytest.approx(1.2 * AROUSAL_EFFECT.level_db, abs=2.5)


def test_valence_effect_is_present_but_smaller_than_arousal() -> None:
    for measure in (pitch, rms, centroid):
        by_arousal = mean_over_seeds(measure, 0.6, 0.0) / mean_over_seeds(measure, -0.6, 0.0)
        by_valence = mean_over_seeds(measure, 0.0, 0.6) / mean_over_seeds(measure, 0.0, -0.6)
        assert by_valence > 1.0, measure.__name__
        assert np.log(by_valence) < 0.6 * np.log(by_arousal), measure.__name__


def test_brightness_follows_arousal() -> None:
    centroids = [mean_over_seeds(centroid, a, 0.0) for a in (-0.6, 0.0, 0.6)]
    assert centroids[0] < centroids[1] < centroids[2]
    assert centroids[2] / centroids[0] > 2.0


def test_arousal_is_readable_across_random_speakers() -> None:
    """Level and spectral centroid alone, fitted linearly over random voices, SNRs and talk patterns, track arousal."""
    rng = np.random.default_rng(0)
    n = int(3 * FPS)
    features, targets = [], []
    for _ in range(48):
        arousal, valence = rng.uniform(-1.0, 1.0, size=2)
        talk = speech_activity(n, FPS, rng) | (np.arange(n) < n // 2)
        y = synthesize_speech(np.full(n, arousal), np.full(n, valence), talk, Voice.random(rng), FPS, RATE, rng)
        features.append([np.log(rms(loud_frames(y))), np.log(centroid(y)), 1.0])
        targets.append(arousal)
    x, t = np.array(features), np.array(targets)
    weights, *_ = np.linalg.lstsq(x[:32], t[:32], rcond=None)
    assert np.corrcoef(x[32:] @ weights, t[32:])[0, 1] > 0.85


def test_mapping_is_monotone_and_valence_is_the_weaker_cue() -> None:
    grid = np.linspace(-1.0, 1.0, 21)
    for name, values in acoustic_controls(grid, np.zeros_like(grid)).items():
        assert np.all(np.diff(values) > 0), f"{name} must rise with arousal"
    for name, values in acoustic_controls(np.zeros_like(grid), grid).items():
        assert np.all(np.diff(values) > 0), f"{name} must rise with valence"
    shared = ("f0_octaves", "level_db", "rate_octaves", "brightness_octaves", "f0_spread_octaves")
    ratios = np.array([getattr(VALENCE_EFFECT, field) / getattr(AROUSAL_EFFECT, field) for field in shared])
    assert np.all(ratios < 0.6) and 0.15 < ratios.mean() < 0.3  # about a fifth of the arousal effect
    assert ratios.max() / ratios.min() > 2.0  # not a scaled copy of arousal, so the two can be told apart
    assert VALENCE_EFFECT.formant_octaves > AROUSAL_EFFECT.formant_octaves  # the valence-specific cue
    controls = acoustic_controls(np.array([0.5]), np.array([-0.5]))
    assert controls["f0"][0] == pytest.approx(2.0 ** (0.5 * 0.6 - 0.5 * 0.2))
    assert controls["level_db"][0] == pytest.approx(0.5 * 6.0 - 0.5 * 1.0)


def test_speaker_picks_the_voice() -> None:
    n = int(8 * FPS)
    who = (np.arange(n) >= n // 2).astype(np.int64)
    voices = [Voice(100.0, 0.95, 0.1), Voice(200.0, 1.15, 0.1)]
    y = synthesize_speech(np.zeros(n), np.zeros(n), np.ones(n, bool), voices, FPS, RATE, np.random.default_rng(2), who)
    half = len(y) // 2
    assert pitch(y[half:]) / pitch(y[:half]) == pytest.approx(2.0, rel=0.15)


def test_voice_random_draws_plausible_adults() -> None:
    rng = np.random.default_rng(0)
    voices = [Voice.random(rng) for _ in range(300)]
    f0 = np.array([v.f0 for v in voices])
    assert np.all((f0 >= 90.0) & (f0 <= 240.0))
    assert (f0 < 150).mean() > 0.3 and (f0 > 170).mean() > 0.3  # low and high voices
    assert all(0.85 <= v.formant_shift <= 1.2 and 0.0 <= v.breathiness <= 1.0 for v in voices)
    assert np.corrcoef(f0, [v.formant_shift for v in voices])[0, 1] > 0.5  # higher voice, shorter tract


def run_lengths(x: np.ndarray, value) -> np.ndarray:
    """Lengths of the inner runs of ``value`` (the first and last run are cut by the ends)."""
    edges = np.flatnonzero(np.diff(x.astype(np.int64)) != 0) + 1
    runs = np.split(x, edges)[1:-1]
    return np.array([len(r) for r in runs if r[0] == value])


@pytest.mark.parametrize(("talk", "pause"), [(3.0, 1.0), (2.0, 2.0)])
def test_speech_activity_matches_the_requested_means(talk: float, pause: float) -> None:
    fps = 25.0
    mask = speech_activity(int(4 * 3600 * fps), fps, np.random.default_rng(0), mean_talk_s=talk, mean_pause_s=pause)
    assert mask.dtype == bool
    assert mask.mean() == pytest.approx(talk / (talk + pause), abs=0.02)
    assert run_lengths(mask, True).mean() / fps == pytest.approx(talk, rel=0.08)
    assert run_lengths(mask, False).mean() / fps == pytest.approx(pause, rel=0.08)


def test_speech_activity_is_deterministic_and_sized() -> None:
    first = speech_activity(1000, 30.0, np.random.default_rng(5))
    assert first.shape == (1000,)
    assert np.array_equal(first, speech_activity(1000, 30.0, np.random.default_rng(5)))
    assert speech_activity(0, 30.0, np.random.default_rng(5)).shape == (0,)


def test_turns_alternate_two_people_for_a_few_seconds() -> None:
    fps = 30.0
    who = turns(int(4 * 3600 * fps), fps, np.random.default_rng(0))
    assert who.dtype == np.int64
    assert set(np.unique(who)) == {0, 1}
    assert who.mean() == pytest.approx(0.5, abs=0.03)
    for person in (0, 1):
        assert run_lengths(who, person).mean() / fps == pytest.approx(4.0, rel=0.08)
    assert np.array_equal(turns(500, fps, np.random.default_rng(3)), turns(500, fps, np.random.default_rng(3)))


def test_bad_inputs_are_named() -> None:
    rng = np.random.default_rng(0)
    ok = np.zeros(10)
    talk = np.ones(10, dtype=bool)
    with pytest.raises(ValueError, match="fps and sample_rate must be positive"):
        synthesize_speech(ok, ok, talk, VOICE, 0.0, RATE, rng)
    with pytest.raises(ValueError, match="valence must have the shape of arousal"):
        synthesize_speech(ok, np.zeros(9), talk, VOICE, FPS, RATE, rng)
    with pytest.raises(ValueError, match="speaking must have the shape of arousal"):
        synthesize_speech(ok, ok, talk[:5], VOICE, FPS, RATE, rng)
    with pytest.raises(ValueError, match="1-D per-frame curves"):
        synthesize_speech(ok.reshape(2, 5), ok.reshape(2, 5), talk.reshape(2, 5), VOICE, FPS, RATE, rng)
    with pytest.raises(ValueError, match=r"arousal must lie in \[-1, 1\].*fill invalid \(-5\) frames"):
        synthesize_speech(np.full(10, -5.0), ok, talk, VOICE, FPS, RATE, rng)
    with pytest.raises(ValueError, match=r"valence must lie in \[-1, 1\] \(no NaN\)"):
        synthesize_speech(ok, np.full(10, np.nan), talk, VOICE, FPS, RATE, rng)
    with pytest.raises(ValueError, match="voice must be a Voice or a non-empty sequence of Voice"):
        synthesize_speech(ok, ok, talk, [], FPS, RATE, rng)
    with pytest.raises(ValueError, match="a sequence of voices needs speaker"):
        synthesize_speech(ok, ok, talk, [VOICE, VOICE], FPS, RATE, rng)
    with pytest.raises(ValueError, match=r"speaker must be one int in 0\.\.1 .* values 0\.\.2"):
        synthesize_speech(ok, ok, talk, [VOICE, VOICE], FPS, RATE, rng, speaker=np.arange(10) % 3)
    with pytest.raises(ValueError, match=r"expression must be one integer class per frame, shape \(10,\)"):
        synthesize_speech(ok, ok, talk, VOICE, FPS, RATE, rng, expression=np.zeros(10))
    with pytest.raises(ValueError, match=r"expression classes must lie in 0\.\.7; got 0\.\.8"):
        synthesize_speech(ok, ok, talk, VOICE, FPS, RATE, rng, expression=np.arange(10) % 9)
    with pytest.raises(ValueError, match="mean_talk_s must be a positive number of seconds, got 0"):
        speech_activity(10, FPS, rng, mean_talk_s=0)
    with pytest.raises(ValueError, match="mean_pause_s must be a positive number of seconds"):
        speech_activity(10, FPS, rng, mean_pause_s=-1.0)
    with pytest.raises(ValueError, match="mean_turn_s must be a positive number of seconds"):
        turns(10, FPS, rng, mean_turn_s=0.0)
    with pytest.raises(ValueError, match="need n_frames >= 0 and fps > 0"):
        speech_activity(-1, FPS, rng)
    with pytest.raises(ValueError, match="need n_frames >= 0 and fps > 0"):
        turns(10, 0.0, rng)


def table_effects(row: str, unit: str) -> tuple[float, float]:
    """The arousal and valence cells (``+0.6 oct    +0.2 oct``) at the end of a docstring table row."""
    cells = row.split()[-4:]
    assert cells[1] == cells[3] == unit, row
    return float(cells[0]), float(cells[2])


def test_module_docstring_table_matches_the_constants() -> None:
    doc = audio.__doc__
    rows = {"f0": "f0_octaves", "syllable rate": "rate_octaves", "brightness": "brightness_octaves"}
    rows |= {"f0 spread": "f0_spread_octaves", "formants": "formant_octaves"}
    for label, field in rows.items():
        row = next(line for line in doc.splitlines() if line.startswith(label + " "))
        arousal, valence = getattr(AROUSAL_EFFECT, field), getattr(VALENCE_EFFECT, field)
        assert table_effects(row, "oct") == (arousal, valence), row
    level = next(line for line in doc.splitlines() if line.startswith("level "))
    assert table_effects(level, "dB") == (AROUSAL_EFFECT.level_db, VALENCE_EFFECT.level_db)
    assert f"above {audio.BRIGHTNESS_HZ:g} Hz" in doc and f"({audio.SYLLABLE_RATE_HZ:g} Hz)" in doc
