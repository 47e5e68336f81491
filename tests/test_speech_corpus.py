"""The synthetic emotional speech corpus and the smoke encoder's fine-tuning on it (the stand-in for PDEM's
MSP-Podcast training): what changes, what stays, and that the frozen features then carry arousal."""

import numpy as np
import pytest
import torch

from harness.data.synthetic.corpus import LABEL_RANGE, emotional_speech_corpus
from harness.models.pdem import fine_tune_smoke_pdem, load_pdem, normalise_windows


def test_corpus_is_seeded_sized_and_labelled() -> None:
    corpus = emotional_speech_corpus(6, 2.0, 16000, seed=3)
    assert corpus.waves.shape == (6, 32000) and corpus.waves.dtype == np.float32
    assert np.abs(corpus.waves).max() <= 1.0 and np.all(corpus.waves[:, :8000].std(axis=1) > 0.01)  # talk at once
    for labels in (corpus.arousal, corpus.valence):
        assert labels.shape == (6,) and np.all(np.abs(labels) <= LABEL_RANGE + 0.5)
    assert corpus.expression.shape == (6,) and corpus.expression.min() >= 0 and corpus.expression.max() < 8
    again = emotional_speech_corpus(6, 2.0, 16000, seed=3)
    assert np.array_equal(corpus.waves, again.waves) and np.array_equal(corpus.arousal, again.arousal)
    assert np.array_equal(corpus.expression, again.expression)
    assert not np.array_equal(corpus.waves, emotional_speech_corpus(6, 2.0, 16000, seed=4).waves)
    with pytest.raises(ValueError, match="need clips >= 1 and seconds > 0"):
        emotional_speech_corpus(0, 2.0, 16000, seed=3)


def test_fine_tuning_trains_only_the_lower_layers_seeded_and_fits_the_corpus() -> None:
    corpus = emotional_speech_corpus(96, 2.0, 16000, seed=0)
    waves = normalise_windows(torch.from_numpy(corpus.waves))
    arousal, valence = torch.from_numpy(corpus.arousal), torch.from_numpy(corpus.valence)
    before, tuned = load_pdem(None, "smoke", seed=0), load_pdem(None, "smoke", seed=0)
    losses = fine_tune_smoke_pdem(tuned, waves, arousal, valence, 10, seed=0)
    assert not tuned.training and len(losses) == 10
    assert losses[-1] < 0.95 * losses[0] and losses == sorted(losses, reverse=True), losses  # it learns, slowly
    old, new = before.state_dict(), tuned.state_dict()
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    lower = ("feature_projection.", "encoder.pos_conv_embed.", "encoder.layers.0.", "encoder.layers.1.")
    assert changed and all(name.startswith(tuple(f"wav2vec2.{part}" for part in lower)) for name in changed)
    assert any(name.startswith("wav2vec2.encoder.layers.1.") for name in changed)
    again = load_pdem(None, "smoke", seed=0)
    assert fine_tune_smoke_pdem(again, waves, arousal, valence, 10, seed=0) == losses
    assert all(torch.equal(new[name], again.state_dict()[name]) for name in new)  # seeded


def test_fine_tuning_with_classes_adds_their_cross_entropy_and_fits_it() -> None:
    corpus = emotional_speech_corpus(48, 2.0, 16000, seed=1)
    waves = normalise_windows(torch.from_numpy(corpus.waves))
    arousal, valence = torch.from_numpy(corpus.arousal), torch.from_numpy(corpus.valence)
    classes = torch.from_numpy(corpus.expression)
    plain = fine_tune_smoke_pdem(load_pdem(None, "smoke", seed=0), waves, arousal, valence, 4, seed=0)
    both = fine_tune_smoke_pdem(
        load_pdem(None, "smoke", seed=0), waves, arousal, valence, 4, seed=0, expression=classes
    )
    assert both[0] > plain[0] + 1.5  # about ln 8 of cross-entropy on top of the squared error at first
    assert both[-1] < both[0], both
