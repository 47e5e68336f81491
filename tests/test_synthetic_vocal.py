"""The voice's expression cues (generator v5, :mod:`harness.data.synthetic.vocal`), measured on the waveform: each
class sounds as its docstring row says, against Neutral, in talk and in pauses."""

import numpy as np
import pytest
from scipy.signal import welch

from harness.data.synthetic import vocal
from harness.data.synthetic.audio import Voice, synthesize_speech
from harness.data.synthetic.vocal import EVENT_RATE_HZ, EVENTS, draw_events, vocal_cues

FPS = 30.0
RATE = 16000
N = 240  # 8 s
VOICE = Voice(f0=140.0, formant_shift=1.0, breathiness=0.15)
NEUTRAL, ANGER, DISGUST, FEAR, HAPPINESS, SADNESS, SURPRISE, OTHER = range(8)


def voice_of(cls: int, talking: bool, seed: int, events: bool = True) -> np.ndarray:
    """8 s of one class at valence = arousal = 0, talking throughout or silent (events only)."""
    rng = np.random.default_rng(seed)
    expression = np.full(N, cls)
    drawn = draw_events(expression, FPS, rng) if events else None
    zeros = np.zeros(N)
    return synthesize_speech(
        zeros, zeros, np.full(N, talking), VOICE, FPS, RATE, rng, expression=expression, events=drawn
    )


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def centroid(y: np.ndarray) -> float:
    freqs, power = welch(y, RATE, nperseg=512)
    return float(np.sum(freqs * power) / np.sum(power))


def high_share(y: np.ndarray) -> float:
    """Share of the power between 1 and 5 kHz."""
    freqs, power = welch(y, RATE, nperseg=512)
    return float(power[(freqs > 1000) & (freqs < 5000)].sum() / power.sum())


def rhythm_hz(y: np.ndarray) -> float:
    """The strongest rate (2-20 Hz: above the events' own rate) of the loudness envelope (10 ms frames)."""
    frames = np.sqrt(np.mean(y[: len(y) // 160 * 160].reshape(-1, 160).astype(np.float64) ** 2, axis=1))
    spectrum = np.abs(np.fft.rfft(frames - frames.mean(), 4096)) ** 2
    rates = np.fft.rfftfreq(4096, 0.01)
    band = (rates > 2.0) & (rates < 20.0)
    return float(rates[band][np.argmax(spectrum[band])])


def over_seeds(measure, cls: int, talking: bool, events: bool = True) -> float:
    return float(np.mean([measure(voice_of(cls, talking, seed, events)) for seed in range(3)]))


def test_every_class_but_neutral_is_heard_in_pauses() -> None:
    silence = over_seeds(rms, NEUTRAL, talking=False)
    for cls in range(1, 8):
        assert over_seeds(rms, cls, talking=False) > 2.5 * silence, EVENTS[cls]


def test_laughter_and_sobs_pulse_at_their_rates() -> None:
    assert all(4.0 < rhythm_hz(voice_of(HAPPINESS, False, seed)) < 6.5 for seed in range(3))
    assert all(2.0 < rhythm_hz(voice_of(SADNESS, False, seed)) < 3.5 for seed in range(3))


def test_gasps_hiss_and_hums_murmur() -> None:
    background = over_seeds(high_share, NEUTRAL, talking=False)
    assert over_seeds(high_share, FEAR, talking=False) > background + 0.3
    assert over_seeds(high_share, OTHER, talking=False) < background / 3


def test_voice_quality_while_talking() -> None:
    """Without events: anger is brighter and louder, sadness quieter and darker than Neutral."""
    neutral_centroid, neutral_rms = over_seeds(centroid, NEUTRAL, True, False), over_seeds(rms, NEUTRAL, True, False)
    assert over_seeds(centroid, ANGER, True, False) > 1.3 * neutral_centroid
    assert over_seeds(rms, ANGER, True, False) > 1.2 * neutral_rms
    assert over_seeds(rms, SADNESS, True, False) < 0.75 * neutral_rms
    assert over_seeds(centroid, SADNESS, True, False) < neutral_centroid


def test_events_come_at_the_documented_rate_and_only_for_classes_that_have_one() -> None:
    expression = np.repeat([NEUTRAL, HAPPINESS], 30 * 60)  # a minute of each
    events = draw_events(expression, FPS, np.random.default_rng(0))
    assert set(events.classes.tolist()) == {HAPPINESS}
    assert events.start.min() >= 60.0
    assert abs(len(events.start) / 60.0 - EVENT_RATE_HZ) < 0.25
    assert np.all(events.stop > events.start)


@pytest.mark.parametrize("talking", [True, False])
def test_vocal_cues_mark_the_heard_class(talking: bool) -> None:
    expression = np.repeat([NEUTRAL, ANGER, OTHER], 150)
    events = draw_events(expression, FPS, np.random.default_rng(1))
    cues = vocal_cues(expression, np.full(len(expression), talking), events, FPS)
    assert cues.shape == (450, 7) and cues[:130].max() == 0.0  # Neutral carries nothing
    anger = cues[160:290, ANGER - 1]
    assert (anger.min() > 0.99) if talking else (anger.max() > 0.5)  # quality while talking; events in pauses
    assert cues[310:, OTHER - 1].max() > 0.5  # Other has no quality, only its hum


def test_docstring_table_names_every_class_and_event() -> None:
    rows = [line for line in vocal.__doc__.splitlines() if line[:1].isalpha() and "  " in line]
    names = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
    for cls, name in enumerate(names):
        row = next(line for line in rows if line.startswith(name + " "))
        assert (EVENTS[cls] is None) == row.rstrip().endswith("none"), row
        if EVENTS[cls]:
            spoken = {"ugh": '"ugh"', "oh": '"oh!"', "hum": '"hmm"'}.get(EVENTS[cls], EVENTS[cls])
            assert spoken in row, row
