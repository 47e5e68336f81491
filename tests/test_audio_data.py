"""harness.data.audio: decoding a video's audio onto the frame clock, and Silero voice activity per frame.

The containers are written here with PyAV, small and real: AAC in .mp4 and .aac, PCM in .avi and .mkv, in the sample
formats FFmpeg decoders hand back (fltp, s16, s32, u8, flt).
"""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import write_video

from harness.data.audio import (
    CLIP_LEVEL,
    AudioTrack,
    NoAudioError,
    decode_audio,
    samples_for_frames,
    speech_probability,
    vad_chunk_probabilities,
)
from harness.errors import DataError

STORED_AS = {"s16": np.int16, "s32": np.int32, "u8": np.uint8, "flt": np.float32}  # by format name less its "p"


def write_av(
    path: Path,
    wave: np.ndarray,
    rate: int,
    codec: str,
    fps: Fraction = Fraction(25),
    audio_start: int = 0,
    video_start: int = 0,
    gap_at: int | None = None,
) -> Path:
    """A container with a tiny video of ``wave``'s duration and ``wave`` ((channels, n), in [-1, 1]) as its audio.

    ``audio_start`` and ``video_start`` shift the first audio sample (in samples) and the first video frame (in
    frames); ``gap_at`` makes the audio timestamps jump by half a second at that sample.
    """
    import av

    layout = {1: "mono", 2: "stereo"}[wave.shape[0]]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4" if path.suffix == ".avi" else "libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        sound = container.add_stream(codec, rate=rate, layout=layout)
        fmt = av.AudioFormat(sound.codec_context.codec.audio_formats[0].name)
        for index in range(max(1, round(wave.shape[1] / rate * fps))):
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            frame.pts = index + video_start
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, wave.shape[1], 1024):
            data = _stored(wave[:, start : start + 1024], fmt.name)
            frame = av.AudioFrame.from_ndarray(
                data if fmt.is_planar else data.T.reshape(1, -1).copy(), fmt.name, layout
            )
            jump = rate // 2 if gap_at is not None and start >= gap_at else 0
            frame.sample_rate, frame.pts = rate, start + audio_start + jump
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path


def _stored(block: np.ndarray, fmt: str) -> np.ndarray:
    dtype = np.dtype(STORED_AS[fmt.rstrip("p")])
    if dtype.kind == "f":
        return np.ascontiguousarray(block, dtype=dtype)
    if dtype == np.uint8:
        return np.clip(np.round(block * 128 + 128), 0, 255).astype(np.uint8)
    top = np.iinfo(dtype).max
    return np.clip(np.round(block.astype(np.float64) * top), -top - 1, top).astype(dtype)


def tone(rate: int, seconds: float, hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(round(rate * seconds)) / rate)).astype(np.float32)


def click(rate: int, seconds: float, at_s: float, channels: int = 1) -> np.ndarray:
    """Silence with a 10 ms step of 0.5 at ``at_s``: where it lands after decoding tells the clock."""
    wave = np.zeros((channels, round(rate * seconds)), np.float32)
    wave[:, round(at_s * rate) : round((at_s + 0.01) * rate)] = 0.5
    return wave


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def first_above(audio: AudioTrack, level: float = 0.25) -> float:
    return float(np.argmax(np.abs(audio.samples) > level) / audio.sample_rate)


# Decoding


def test_aac_48k_stereo_mp4_is_mono_16k_with_the_tone_kept(tmp_path):
    left, right = tone(48000, 2.0, amplitude=0.4), tone(48000, 2.0, amplitude=0.2)
    audio = decode_audio(write_av(tmp_path / "aac.mp4", np.stack([left, right]), 48000, "aac"))
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert (audio.sample_rate, audio.source_rate, audio.channels) == (16000, 48000, 2)
    assert abs(len(audio.samples) - 32000) <= 1024 // 3  # AAC pads the stream to whole 1024-sample frames
    middle = audio.samples[4000:28000]
    assert peak_hz(middle, 16000) == pytest.approx(440.0, abs=1.0)
    assert rms(middle) == pytest.approx(0.3 / np.sqrt(2), rel=0.03)  # the mean of the two channels
    assert audio.clipped_fraction == 0.0 and audio.offset_s == 0.0


def test_pcm_s16_44k_avi_downmix_is_the_channel_mean(tmp_path):
    left = tone(44100, 2.0, amplitude=0.5)
    audio = decode_audio(write_av(tmp_path / "pcm.avi", np.stack([left, np.zeros_like(left)]), 44100, "pcm_s16le"))
    assert (audio.source_rate, audio.channels) == (44100, 2)
    assert abs(len(audio.samples) - 32000) <= 2
    middle = audio.samples[4000:28000]
    assert peak_hz(middle, 16000) == pytest.approx(440.0, abs=1.0)
    assert rms(middle) == pytest.approx(0.25 / np.sqrt(2), rel=1e-3)
    assert np.abs(audio.samples).max() <= 1.0


@pytest.mark.parametrize("codec", ["pcm_u8", "pcm_s32le", "pcm_f32le", "pcm_s16le"])
def test_every_sample_format_scales_to_the_same_level(tmp_path, codec):
    wave = tone(48000, 1.0, amplitude=0.5)
    audio = decode_audio(write_av(tmp_path / "pcm.mkv", np.stack([wave, wave]), 48000, codec))
    middle = audio.samples[2000:14000]
    assert len(audio.samples) == 16000
    assert peak_hz(middle, 16000) == pytest.approx(440.0, abs=1.5)
    assert rms(middle) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)  # u8 is coarse: 1 %


def test_another_output_rate(tmp_path):
    audio = decode_audio(write_av(tmp_path / "aac.mp4", tone(48000, 2.0)[None], 48000, "aac"), sample_rate=8000)
    assert audio.sample_rate == 8000 and abs(len(audio.samples) - 16000) <= 1024 // 6
    assert peak_hz(audio.samples[2000:14000], 8000) == pytest.approx(440.0, abs=1.0)


@pytest.mark.parametrize("rate", [0, -16000, 16000.0, True])
def test_a_bad_output_rate_is_refused(tmp_path, rate):
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        decode_audio(tmp_path / "any.mp4", sample_rate=rate)


# The clock: sample k at k / sample_rate after the first video frame


def test_audio_starting_late_is_preceded_by_silence(tmp_path):
    path = write_av(tmp_path / "late.mkv", click(44100, 2.0, 1.0), 44100, "pcm_s16le", audio_start=22050)
    audio = decode_audio(path)
    assert audio.offset_s == pytest.approx(0.5)
    assert first_above(audio) == pytest.approx(1.5, abs=0.002)
    assert not audio.samples[:7900].any()


def test_audio_starting_before_the_first_video_frame_loses_its_head(tmp_path):
    path = write_av(tmp_path / "early.mp4", click(48000, 2.0, 1.0), 48000, "aac", video_start=10)  # video at 0.4 s
    audio = decode_audio(path)
    assert audio.offset_s == pytest.approx(-0.4, abs=0.001)
    assert first_above(audio) == pytest.approx(0.6, abs=0.002)


def test_a_gap_in_the_timestamps_is_filled_with_silence(tmp_path):
    path = write_av(tmp_path / "gap.mkv", click(44100, 2.0, 1.0), 44100, "pcm_s16le", gap_at=22050)
    audio = decode_audio(path)
    assert first_above(audio) == pytest.approx(1.5, abs=0.002)
    assert len(audio.samples) == pytest.approx(2.5 * 16000, abs=20)


def test_aac_keeps_time(tmp_path):
    audio = decode_audio(write_av(tmp_path / "click.mp4", click(48000, 2.0, 1.0, channels=2), 48000, "aac"))
    assert first_above(audio) == pytest.approx(1.0, abs=0.002)


# Errors


def test_a_video_without_audio_raises_no_audio_naming_the_file(tmp_path):
    path = write_video(tmp_path / "silent-video.mp4", Fraction(30), 5, audio=False)
    with pytest.raises(NoAudioError, match=r"silent-video\.mp4.*no audio stream.*constant prior"):
        decode_audio(path)
    assert issubclass(NoAudioError, DataError)


def test_an_audio_stream_without_samples_raises_no_audio(tmp_path):
    import av

    path = tmp_path / "empty-audio.mkv"
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
        container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with pytest.raises(NoAudioError, match=r"empty-audio\.mkv.*without samples.*constant prior"):
        decode_audio(path)


def test_a_truncated_video_raises_data_error_naming_it(tmp_path):
    path = write_av(tmp_path / "whole.mp4", tone(48000, 1.0)[None], 48000, "aac")
    cut = tmp_path / "cut-short.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut-short\.mp4: unreadable or truncated"):
        decode_audio(cut)


def test_a_file_that_is_no_video_raises_data_error(tmp_path):
    path = tmp_path / "noise.avi"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"noise\.avi: unreadable or truncated"):
        decode_audio(path)


def test_a_stream_that_changes_sample_rate_is_refused(tmp_path):
    import av

    def adts(rate: int) -> bytes:
        path = tmp_path / f"{rate}.aac"
        with av.open(str(path), mode="w", format="adts") as container:
            stream = container.add_stream("aac", rate=rate, layout="mono")
            wave = tone(rate, 0.5)
            for start in range(0, len(wave) - 1023, 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return path.read_bytes()

    joined = tmp_path / "joined.aac"
    joined.write_bytes(adts(48000) + adts(22050))
    with pytest.raises(DataError, match=r"joined\.aac: the audio stream changes sample rate from 48000 Hz to 22050"):
        decode_audio(joined)


# Fitting the audio to the frames


def track(samples: np.ndarray, rate: int = 16000) -> AudioTrack:
    samples = np.asarray(samples, np.float32)
    return AudioTrack(Path("made.mp4"), samples, rate, rate, 1, 0.0, 0.0)


def test_audio_shorter_than_the_labels_is_zero_padded():
    audio = track(np.full(16000, 0.5))
    out = samples_for_frames(audio, 45, 30.0)  # 1.5 s of frames, 1 s of audio
    assert len(out) == 24000 and out.dtype == np.float32
    assert (out[:16000] == 0.5).all() and not out[16000:].any()


def test_audio_longer_than_the_labels_is_cut():
    audio = track(np.arange(32000) / 32000)
    out = samples_for_frames(audio, 30, Fraction(30000, 1001))
    assert len(out) == round(30 * 1001 / 30000 * 16000)
    np.testing.assert_array_equal(out, audio.samples[: len(out)])
    out[0] = 9.0
    assert audio.samples[0] == 0.0  # a copy, not a view


@pytest.mark.parametrize(
    ("n_frames", "fps", "match"), [(-1, 30.0, "n_frames"), (10, 0.0, "fps"), (2.5, 30.0, "n_frames")]
)
def test_bad_frame_counts_and_rates_are_refused(n_frames, fps, match):
    with pytest.raises(ValueError, match=match):
        samples_for_frames(track(np.zeros(100)), n_frames, fps)


# Voice activity


def test_silence_has_low_speech_probability():
    probability = speech_probability(track(np.zeros(16000 * 5)), 150, 30.0)
    assert probability.shape == (150,) and probability.dtype == np.float32
    assert probability.max() < 0.1


@pytest.mark.parametrize(("f0", "margin"), [(200.0, 0.5), (110.0, 0.15)])
def test_speech_is_more_probable_in_talk_than_in_pauses(f0, margin):
    """Silero is sure of the synthetic high voice and much less of the low one (about 0.3-0.5 in talk)."""
    from harness.data.synthetic.audio import Voice, speech_activity, synthesize_speech

    rng = np.random.default_rng(3)
    n, fps = 600, 30.0
    talk = speech_activity(n, fps, rng, mean_talk_s=2.0, mean_pause_s=1.5)
    assert talk.any() and (~talk).any()
    voice = Voice(f0=f0, formant_shift=0.85 + 0.35 * (f0 - 90.0) / 150.0, breathiness=0.2)
    wave = synthesize_speech(np.zeros(n), np.zeros(n), talk, voice, fps, 16000, rng)
    probability = speech_probability(track(wave), n, fps)
    assert probability[talk].mean() > probability[~talk].mean() + margin
    assert ((probability >= 0) & (probability <= 1)).all()


def test_the_batched_vad_equals_the_models_own_streaming_call():
    import torch

    from harness.data.audio import _batched_matches, _one_torch_thread, _vad, _vad_streaming

    rng = np.random.default_rng(0)
    wave = np.concatenate([0.01 * rng.standard_normal(8000), tone(16000, 1.0, 220.0, 0.3), np.zeros(3000)])
    chunks = np.zeros((-(-len(wave) // 512), 512), np.float32)
    chunks.reshape(-1)[: len(wave)] = wave
    threads = torch.get_num_threads()
    model, batched = _vad()
    assert batched and _batched_matches(model)
    with _one_torch_thread():  # the public call is slow on many threads of a loaded machine
        streaming = _vad_streaming(model, chunks)
    np.testing.assert_allclose(vad_chunk_probabilities(wave), streaming, atol=1e-5)
    assert torch.get_num_threads() == threads  # loading and running the model leave torch's threads alone


def test_a_model_of_another_layout_takes_the_streaming_call(monkeypatch):
    import harness.data.audio as audio_module

    model, _ = audio_module._vad()

    class Opaque:  # the public call only, no inner parts
        def reset_states(self):
            model.reset_states()

        def __call__(self, x, sr):
            return model(x, sr)

    assert not audio_module._batched_matches(Opaque())
    wave = tone(16000, 1.5, 220.0, 0.3)
    expected = vad_chunk_probabilities(wave)
    monkeypatch.setattr(audio_module, "_vad", lambda: (Opaque(), False))
    np.testing.assert_allclose(vad_chunk_probabilities(wave), expected, atol=1e-5)


def test_clipped_audio_is_measured_and_still_works(tmp_path):
    loud = np.clip(tone(44100, 2.0, amplitude=3.0), -1.0, 1.0)
    audio = decode_audio(write_av(tmp_path / "loud.avi", loud[None], 44100, "pcm_s16le"))
    expected = np.mean(np.abs(loud) >= CLIP_LEVEL)
    assert audio.clipped_fraction == pytest.approx(expected, abs=0.01) and audio.clipped_fraction > 0.5
    assert np.abs(audio.samples).max() <= 1.0
    assert speech_probability(audio, 50, 25.0).shape == (50,)


def test_very_short_audio_works(tmp_path):
    audio = decode_audio(write_av(tmp_path / "short.mkv", tone(48000, 0.3)[None], 48000, "pcm_s16le"))
    assert len(audio.samples) == 4800
    assert speech_probability(audio, 9, 30.0).shape == (9,)
    assert vad_chunk_probabilities(np.zeros(100, np.float32)).shape == (1,)
    assert speech_probability(audio, 0, 30.0).shape == (0,)


def test_frames_past_the_audio_see_silence():
    from harness.data.synthetic.audio import Voice, synthesize_speech

    rng = np.random.default_rng(1)
    n = 90  # 3 s of talk
    voice = Voice(f0=200.0, formant_shift=1.1, breathiness=0.2)
    wave = synthesize_speech(np.zeros(n), np.zeros(n), np.ones(n, bool), voice, 30.0, 16000, rng)
    probability = speech_probability(track(wave), 2 * n, 30.0)  # labels run 3 s past the audio
    assert probability[15:n].mean() > 0.5 and probability[n + 15 :].max() < 0.2


def test_audio_at_another_rate_is_resampled_for_the_vad():
    probability = speech_probability(track(np.zeros(8000 * 2), rate=8000), 50, 25.0)
    assert probability.shape == (50,) and probability.max() < 0.1


def test_a_track_from_a_real_container_gets_a_probability_per_frame(tmp_path):
    path = write_video(tmp_path / "video1.mp4", Fraction(30000, 1001), 40)
    audio = decode_audio(path)
    probability = speech_probability(audio, 42, Fraction(30000, 1001))  # two label lines more than frames
    assert probability.shape == (42,) and np.isfinite(probability).all()


def test_the_vad_takes_mono_only():
    with pytest.raises(ValueError, match=r"samples must be 1-D mono audio; got shape \(2, 100\)"):
        vad_chunk_probabilities(np.zeros((2, 100), np.float32))
