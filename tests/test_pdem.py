"""PDEM and the SUN audio heads: checkpoint layout, offline loading, the frozen/trainable split, pooling, freezing."""

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

from harness.errors import SpecError
from harness.models.pdem import (
    PDEM_OUTPUTS,
    AudioHeadModel,
    PdemModel,
    frame_mask,
    frozen_features,
    load_pdem,
    normalise_windows,
    pool_to_steps,
    smoke_config,
    to_valence_arousal,
)

WINDOW = 4 * 16000


def tiny_config(stable: bool) -> Wav2Vec2Config:
    """The smoke config in PDEM's layout (stable layer norm, layer-normed conv stack) or in wav2vec2-base's (layer
    norm before the layers, group norm on the first conv layer)."""
    config = smoke_config()
    config.do_stable_layer_norm = stable
    config.feat_extract_norm = "layer" if stable else "group"
    return config


def tiny_pdem(stable: bool = True, seed: int = 0) -> PdemModel:
    torch.manual_seed(seed)
    return PdemModel(tiny_config(stable)).eval()


def waves(batch: int = 2, samples: int = WINDOW, seed: int = 1) -> torch.Tensor:
    return normalise_windows(torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed)))


def test_smoke_model_runs_at_fifty_frames_a_second_and_is_seeded():
    model = load_pdem(None, "smoke", seed=3)
    assert not model.training
    pooled, logits = model(waves())
    assert pooled.shape == (2, 32) and logits.shape == (2, len(PDEM_OUTPUTS))
    assert model.wav2vec2(waves(1)).last_hidden_state.shape[1] == 199  # (64000 - 400) // 320 + 1
    again, other = load_pdem(None, "smoke", seed=3), load_pdem(None, "smoke", seed=4)
    state, same, different = model.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[name], same[name]) for name in state)
    assert not all(torch.equal(state[name], different[name]) for name in state)


def test_parameter_names_match_the_published_checkpoint():
    names = [name for name, _ in tiny_pdem().named_parameters()]
    head = {name for name in names if not name.startswith("wav2vec2.")}
    assert head == {f"classifier.{layer}.{p}" for layer in ("dense", "out_proj") for p in ("weight", "bias")}
    assert any(name.startswith("wav2vec2.encoder.layers.3.") for name in names)
    assert any(name.startswith("wav2vec2.feature_extractor.conv_layers.6.") for name in names)


def test_forward_is_mean_over_time_then_the_regression_head():
    model = tiny_pdem()
    x = waves()
    with torch.no_grad():
        hidden = model.wav2vec2(x).last_hidden_state
        pooled, logits = model(x)
        head = model.classifier
        expected = head.out_proj(torch.tanh(head.dense(hidden.mean(1))))
    torch.testing.assert_close(pooled, hidden.mean(1))
    torch.testing.assert_close(logits, expected)


def test_round_trip_through_a_local_folder_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_pdem(seed=5)
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_pdem(tmp_path, "paper", seed=0)
    assert not loaded.training
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[name], restored[name]) for name in original)
    x = waves()
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_legacy_pytorch_bin_with_weight_norm_g_v_loads_without_leftovers(tmp_path):
    """The published checkpoint is a 2022 ``pytorch_model.bin``: the positional conv is stored as weight_g/weight_v."""
    model = tiny_pdem(seed=6)
    model.config.save_pretrained(tmp_path)
    legacy = {}
    for name, tensor in model.state_dict().items():
        name = name.replace("parametrizations.weight.original0", "weight_g")
        legacy[name.replace("parametrizations.weight.original1", "weight_v")] = tensor.clone()
    assert any(name.endswith("weight_g") for name in legacy)
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    loaded = load_pdem(tmp_path, "paper", seed=0)
    x = waves()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1], loaded(x)[1], rtol=0, atol=0)


def test_missing_folder_or_files_name_the_folder_and_what_to_put_there(tmp_path):
    with pytest.raises(SpecError, match=r"no folder given; set the audio spec's `pdem_folder`.*CC BY-NC-SA 4\.0"):
        load_pdem(None, "paper", seed=0)
    with pytest.raises(SpecError, match=r"nowhere.*does not exist.*wav2vec2-large-robust-12-ft-emotion-msp-dim"):
        load_pdem(tmp_path / "nowhere", "paper", seed=0)
    with pytest.raises(SpecError, match=r"has no config\.json.*pytorch_model\.bin or model\.safetensors"):
        load_pdem(tmp_path, "paper", seed=0)
    tiny_config(True).save_pretrained(tmp_path)
    with pytest.raises(SpecError, match=r"has none of model\.safetensors.*found \['config\.json'\]"):
        load_pdem(tmp_path, "paper", seed=0, owner="systems/audio_v1.yaml key pdem_folder")
    with pytest.raises(SpecError, match=r"unknown profile 'fast'; accepted: 'paper', 'smoke'"):
        load_pdem(tmp_path, "fast", seed=0)


def test_a_torn_checkpoint_is_refused_naming_the_folder(tmp_path):
    torch.manual_seed(0)
    PdemModel(tiny_config(True)).save_pretrained(tmp_path)
    (weights,) = tmp_path.glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:4096])
    with pytest.raises(SpecError, match=rf"cannot load {tmp_path} \(from .*\): .*; put there the model folder of"):
        load_pdem(tmp_path, "paper", seed=0)


def test_a_different_checkpoint_is_refused(tmp_path):
    config = tiny_config(True)
    config.num_labels = 2
    torch.manual_seed(0)
    PdemModel(config).save_pretrained(tmp_path)
    with pytest.raises(SpecError, match=r"is not audeering/.*got num_labels=2"):
        load_pdem(tmp_path, "paper", seed=0)


def test_to_valence_arousal_takes_valence_then_arousal_rescaled():
    logits = torch.tensor([[0.9, 0.5, 0.1], [0.25, 0.0, 1.0]])  # arousal, dominance, valence
    expected = torch.tensor([[-0.8, 0.8], [1.0, -0.5]])
    torch.testing.assert_close(to_valence_arousal(logits), expected)
    np.testing.assert_allclose(to_valence_arousal(logits.numpy()), expected.numpy(), rtol=0, atol=1e-7)
    assert PDEM_OUTPUTS == ("arousal", "dominance", "valence")


def test_normalise_windows_matches_the_wav2vec2_feature_extractor():
    x = torch.randn(3, 16000, dtype=torch.float64) * torch.tensor([[0.5], [2.0], [1e-4]], dtype=torch.float64) + 0.3
    reference = Wav2Vec2FeatureExtractor(do_normalize=True).zero_mean_unit_var_norm(list(x.numpy()), None)
    np.testing.assert_allclose(normalise_windows(x).numpy(), np.stack(reference), rtol=1e-12, atol=1e-12)


def test_pool_to_steps_averages_the_frames_of_each_step():
    sequence = torch.randn(2, 199, 3, dtype=torch.float64)
    for n in (20, 4, 199, 1):
        reference = np.stack(
            [sequence[:, (i * 199) // n : -((-(i + 1) * 199) // n)].mean(1).numpy() for i in range(n)], axis=1
        )
        np.testing.assert_allclose(pool_to_steps(sequence, n).numpy(), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stable", [True, False])
@pytest.mark.parametrize("trainable", [0, 1, 2, 4])
def test_frozen_part_then_trainable_blocks_equal_the_full_wav2vec2(stable, trainable):
    pdem = tiny_pdem(stable)
    head = AudioHeadModel(pdem, trainable, "gru", "va", 20).eval()
    x = waves()
    with torch.no_grad():
        full = pdem.wav2vec2(x).last_hidden_state
        split = head.encode(frozen_features(pdem, x, trainable))
    torch.testing.assert_close(split, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("stable", [True, False])
def test_the_split_also_holds_with_right_padding(stable):
    pdem = tiny_pdem(stable)
    head = AudioHeadModel(pdem, 2, "transformer", "expr", 4).eval()
    x = waves()
    sample_mask = torch.ones_like(x, dtype=torch.long)
    sample_mask[1, 40000:] = 0
    x = x * sample_mask
    with torch.no_grad():
        full = pdem.wav2vec2(x, attention_mask=sample_mask).last_hidden_state
        states = frozen_features(pdem, x, 2, sample_mask=sample_mask)
        frames = frame_mask(pdem.config, sample_mask, states.shape[1])
        split = head.encode(states, frames)
    assert frames[0].all() and frames[1].sum() == (40000 - 400) // 320 + 1
    torch.testing.assert_close(split, full, rtol=0, atol=1e-5)


def test_frozen_features_run_in_eval_mode_without_grad_and_restore_the_modes():
    pdem = tiny_pdem()
    head = AudioHeadModel(pdem, 2, "gru", "va", 20).train()
    states = frozen_features(pdem, waves(), 2)
    assert not states.requires_grad
    assert head.training and all(block.training for block in head.blocks) and not pdem.wav2vec2.training
    with torch.no_grad():
        torch.testing.assert_close(states, frozen_features(pdem.train(), waves(), 2), rtol=0, atol=0)


def test_only_the_last_blocks_and_the_head_are_trainable():
    pdem = tiny_pdem()
    head = AudioHeadModel(pdem, 2, "transformer", "va", 20)
    trainable = {name for name, p in pdem.named_parameters() if p.requires_grad}
    assert trainable and all(
        name.startswith(("wav2vec2.encoder.layers.4.", "wav2vec2.encoder.layers.5.", "wav2vec2.encoder.layer_norm."))
        for name in trainable
    )
    assert {name.split(".")[3] for name in trainable if ".layers." in name} == {"4", "5"}
    assert all(p.requires_grad for p in head.parameters())
    own = {name.split(".")[0] for name, _ in head.named_parameters()}
    assert own == {"blocks", "final_norm", "projection", "transformer", "output"}
    loss = head(frozen_features(pdem, waves(), 2)).sum()
    loss.backward()
    assert all(p.grad is not None for p in head.blocks.parameters())
    assert all(p.grad is None for name, p in pdem.named_parameters() if ".layers.3." in name)


@pytest.mark.parametrize(
    ("head", "task", "steps", "width"), [("gru", "va", 20, 2), ("transformer", "expr", 4, 8), ("gru", "au", 20, 12)]
)
def test_heads_give_one_prediction_per_target_step(head, task, steps, width):
    pdem = tiny_pdem()
    model = AudioHeadModel(pdem, 4, head, task, steps).eval()
    states = frozen_features(pdem, waves(3), 4)
    with torch.no_grad():
        out = model(states)
        frames = model.output(model.embed(states))
    assert out.shape == (3, steps, width) and model.embed(states).shape == (3, 199, 256)
    if task == "va":
        assert out.abs().max() <= 1
        frames = torch.tanh(frames)
    torch.testing.assert_close(out, pool_to_steps(frames, steps))


def test_bad_head_settings_are_refused():
    pdem = tiny_pdem()
    with pytest.raises(SpecError, match=r"trainable_blocks must be between 0 and the model's 6 .*got 7"):
        AudioHeadModel(pdem, 7, "gru", "va", 20)
    with pytest.raises(SpecError, match=r"trainable_blocks must be between 0 .*got -1"):
        frozen_features(pdem, waves(), -1)
    with pytest.raises(SpecError, match=r"unknown head 'lstm'; accepted: 'gru', 'transformer'"):
        AudioHeadModel(pdem, 2, "lstm", "va", 20)
    with pytest.raises(SpecError, match=r"unknown task 'vad'; accepted: 'va', 'expr', 'au'"):
        AudioHeadModel(pdem, 2, "gru", "vad", 20)
    with pytest.raises(SpecError, match=r"n_steps must be at least 1 .*got 0"):
        AudioHeadModel(pdem, 2, "gru", "va", 0)


def test_missing_or_unexpected_weights_are_refused_except_the_unused_spec_augment_vector(tmp_path):
    model = tiny_pdem(seed=7)
    model.config.save_pretrained(tmp_path)
    state = dict(model.state_dict())
    assert "wav2vec2.masked_spec_embed" in state
    del state["wav2vec2.masked_spec_embed"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    load_pdem(tmp_path, "paper", seed=0)
    state["classifier.extra.weight"] = torch.zeros(2)
    del state["classifier.dense.bias"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(SpecError, match=r"missing_keys: \['classifier\.dense\.bias'\]; unexpected_keys: \['classi"):
        load_pdem(tmp_path, "paper", seed=0)
