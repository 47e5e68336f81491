"""A video's audio as 16 kHz mono on the clock of its frames, and voice activity per frame.

Aff-Wild2 ships no audio files (ABAW.md, "Images, videos, audio"): each raw video's audio stream is decoded with
PyAV, mixed down to mono, and resampled once per video with soxr (:func:`decode_audio`). Sample k of the result sits
at time ``k / sample_rate`` from the video's first frame, the time of frame 1 (:func:`harness.frames.frame_times`):
audio that starts late is preceded by zeros, audio that starts before the first frame loses its head, and a gap in
the stream's timestamps is filled with zeros. :func:`samples_for_frames` cuts or zero-pads the audio to the span of
a track's frames; :func:`speech_probability` gives Silero VAD's speech probability at every frame's time.

A video without an audio stream raises :class:`NoAudioError`: the caller's audio model falls back to a constant
prior for its tracks. A ``_left``/``_right`` track uses its parent video's audio.

Silero VAD: https://github.com/snakers4/silero-vad (the ``silero-vad`` package ships the model, MIT licence).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.frames import frame_times

SAMPLE_RATE = 16000
CLIP_LEVEL = 0.99  # a source sample at or beyond this magnitude (full scale = 1) counts as clipped
GAP_TOLERANCE_S = 0.005  # timestamp jumps smaller than this are jitter, not gaps
VAD_RATE = 16000
VAD_CHUNK = 512  # samples per Silero VAD decision at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous chunk the model sees in front of each chunk
VAD_BLOCK = 4096  # chunks per encoder batch (about two minutes of audio), to bound memory

_INT_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}


class NoAudioError(DataError):
    """A video has no audio stream, or one that holds no samples."""


@dataclass(frozen=True)
class AudioTrack:
    """Mono audio of one video, ``samples[k]`` at ``k / sample_rate`` seconds after the video's first frame.

    ``source_rate`` and ``channels`` describe the stream as stored. ``clipped_fraction`` is the share of stored
    sample values (all channels) at full scale, ``abs >= CLIP_LEVEL``. ``offset_s`` is where the stream's first
    sample sat relative to the first video frame: positive means that many seconds of zeros were put in front,
    negative that the samples before the first frame were dropped.
    """

    path: Path
    samples: np.ndarray
    sample_rate: int
    source_rate: int
    channels: int
    clipped_fraction: float
    offset_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> AudioTrack:
    """Decode the first audio stream of ``path``, mix it down to mono float32 in [-1, 1], resample to ``sample_rate``.

    Any sample format (``fltp``, ``s16``, ``s32``, ``u8``, planar or packed) and channel layout is accepted; the
    mixdown is the plain mean of the channels. Resampling is soxr's high quality, in one pass over the stream.
    """
    import av  # PyAV links FFmpeg: import only when a video is actually opened

    path = Path(path)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz; got {sample_rate!r}")
    no_audio = (
        f"{path}: the video has no audio stream; its tracks will fall back to a constant prior in the audio models"
    )
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise NoAudioError(no_audio)
            clock = _Clock(path, int(sample_rate), _video_start_s(container))
            for frame in container.decode(container.streams.audio[0]):
                clock.add(frame)
    except av.FFmpegError as error:
        raise DataError(
            f"{path}: unreadable or truncated video, its audio cannot be decoded ({error}); "
            "re-copy or re-download the file"
        ) from error
    if clock.values == 0:
        raise NoAudioError(no_audio.replace("has no audio stream", "has an audio stream without samples"))
    return clock.finish()


class _Clock:
    """Places decoded frames at their timestamps relative to the first video frame and resamples them as they come."""

    def __init__(self, path: Path, sample_rate: int, origin_s: float) -> None:
        self.path, self.sample_rate, self.origin_s = path, sample_rate, origin_s
        self.source_rate = self.channels = self.values = self.clipped = 0
        self.first_at: int | None = None  # where the first frame belongs, in source samples from the origin
        self.position = 0  # source samples placed so far, counted from the origin
        self.skip = 0  # source samples still to drop because they precede the origin
        self.pieces: list[np.ndarray] = []
        self.resampler = None

    def add(self, frame) -> None:
        import soxr

        if self.resampler is None:
            self.source_rate = frame.sample_rate
            self.resampler = soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        elif frame.sample_rate != self.source_rate:
            raise DataError(
                f"{self.path}: the audio stream changes sample rate from {self.source_rate} Hz to "
                f"{frame.sample_rate} Hz part-way; re-encode its audio at one rate (e.g. ffmpeg -ar 48000)"
            )
        mono, clipped, values, channels = _mix_down(frame)
        self.clipped += clipped
        self.values += values
        self.channels = self.channels or channels
        if frame.time is not None:
            at = round((frame.time - self.origin_s) * self.source_rate)
            if self.first_at is None:
                self.first_at, self.skip = at, max(0, -at)
                self._silence(max(0, at))
            elif not self.skip and at - self.position > GAP_TOLERANCE_S * self.source_rate:
                self._silence(at - self.position)  # a gap in the timestamps: keep later frames on the clock
        if self.skip:
            dropped = min(self.skip, len(mono))
            mono, self.skip = mono[dropped:], self.skip - dropped
        self.position += len(mono)
        self.pieces.append(self.resampler.resample_chunk(mono))

    def _silence(self, n: int) -> None:
        if n > 0:
            self.position += n
            self.pieces.append(self.resampler.resample_chunk(np.zeros(n, np.float32)))

    def finish(self) -> AudioTrack:
        self.pieces.append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        samples = np.clip(np.concatenate(self.pieces), -1.0, 1.0)  # resampling can overshoot full scale slightly
        return AudioTrack(
            path=self.path,
            samples=samples,
            sample_rate=self.sample_rate,
            source_rate=self.source_rate,
            channels=self.channels,
            clipped_fraction=self.clipped / self.values,
            offset_s=(self.first_at or 0) / self.source_rate,
        )


def samples_for_frames(audio: AudioTrack, n_frames: int, fps: float | Fraction) -> np.ndarray:
    """The audio spanning frames 1..n_frames, ``round(n_frames / fps * sample_rate)`` samples.

    Cut when the audio runs longer than the frames; zero-padded (silence) when it is shorter, which is common: an
    annotation file often lists a few more frames than the audio covers.
    """
    frame_times(n_frames, float(fps))  # validates n_frames and fps
    n = round(Fraction(n_frames) / Fraction(fps) * audio.sample_rate)
    if n <= len(audio.samples):
        return audio.samples[:n].copy()
    return np.concatenate([audio.samples, np.zeros(n - len(audio.samples), np.float32)])


def speech_probability(audio: AudioTrack, n_frames: int, fps: float | Fraction) -> np.ndarray:
    """Silero VAD's speech probability at each frame's time, float32 ``(n_frames,)`` in [0, 1].

    Frame i (1-based) sits at ``(i - 1) / fps``. The model gives one probability per 32 ms chunk of 16 kHz audio;
    these are interpolated linearly between chunk centres. Frames past the end of the audio see silence (low
    probability). Audio at another rate is resampled to 16 kHz first.
    """
    times = frame_times(n_frames, float(fps))
    if n_frames == 0:
        return np.zeros(0, np.float32)
    samples = samples_for_frames(audio, n_frames, fps)
    if audio.sample_rate != VAD_RATE:
        import soxr

        samples = soxr.resample(samples, audio.sample_rate, VAD_RATE, quality="HQ")
    probabilities = vad_chunk_probabilities(samples)
    centres = (np.arange(len(probabilities)) + 0.5) * (VAD_CHUNK / VAD_RATE)
    return np.interp(times, centres, probabilities).astype(np.float32)


def vad_chunk_probabilities(samples: np.ndarray) -> np.ndarray:
    """Silero VAD's speech probability of every 512-sample chunk of 16 kHz mono ``samples`` (the last one padded).

    The result equals the model's own streaming call (``model(chunk, 16000)`` chunk after chunk from a reset
    state), computed faster: the convolutional encoder runs on all chunks at once and only the LSTM state steps
    through time. A model whose inner layout differs from the one checked at load falls back to the streaming call.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D mono audio; got shape {x.shape}")
    chunks = np.zeros((max(1, -(-len(x) // VAD_CHUNK)), VAD_CHUNK), np.float32)
    chunks.reshape(-1)[: len(x)] = x
    model, batched = _vad()
    with _one_torch_thread():
        return _vad_batched(model, chunks) if batched else _vad_streaming(model, chunks)


def _mix_down(frame) -> tuple[np.ndarray, int, int, int]:
    """Mono float32 of one decoded frame, with its count of clipped values, its count of values, its channels."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T  # packed: one row of interleaved samples
    if data.dtype == np.uint8:
        values = data.astype(np.float32) - np.float32(128.0)
        scale = np.float32(1.0 / 128.0)
    elif data.dtype in _INT_SCALE:
        values, scale = data, np.float32(1.0 / _INT_SCALE[data.dtype])
    else:
        values, scale = data, np.float32(1.0)
    # One pass each for the extremes, and a count only when a frame reaches full scale.
    limit = CLIP_LEVEL / scale
    clipped = 0
    if values.size and (values.max() >= limit or values.min() <= -limit):
        clipped = int(np.count_nonzero(np.abs(values.astype(np.float64)) >= limit))
    mono = np.add.reduce(values, axis=0, dtype=np.float32) if channels > 1 else values[0].astype(np.float32)
    return mono * (scale / channels), clipped, values.size, channels


def _video_start_s(container) -> float:
    """Time of the first video frame in the container's clock: the origin of the audio (0 without video)."""
    if not container.streams.video:
        return 0.0
    stream = container.streams.video[0]
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _lstm(gates_in: np.ndarray, weight_hh: np.ndarray) -> np.ndarray:
    """Hidden states of a one-layer LSTM (PyTorch gate order i, f, g, o) over precomputed input projections."""
    size = weight_hh.shape[1]
    recurrent = np.ascontiguousarray(weight_hh.T)
    h = np.zeros(size, np.float32)
    c = np.zeros(size, np.float32)
    hidden = np.empty((len(gates_in), size), np.float32)
    for step, projected in enumerate(gates_in):
        gates = projected + h @ recurrent
        sig = 0.5 + 0.5 * np.tanh(0.5 * gates)  # the logistic function, without overflow
        c = sig[size : 2 * size] * c + sig[:size] * np.tanh(gates[2 * size : 3 * size])
        h = sig[3 * size :] * np.tanh(c)
        hidden[step] = h
    return hidden


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the small VAD model on one thread, as silero_vad itself does: as fast as two threads on an idle machine,
    and several times faster than many on a loaded one (measured: 0.5 s against 1.1 s for 5 minutes of audio)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _vad_batched(model, chunks: np.ndarray) -> np.ndarray:
    """The streaming call's result from the model's parts: feature extractor and encoder per chunk, LSTM, decoder."""
    import torch

    inner = model._model
    context = np.zeros((len(chunks), VAD_CONTEXT), np.float32)
    context[1:] = chunks[:-1, -VAD_CONTEXT:]
    inputs = torch.from_numpy(np.concatenate([context, chunks], axis=1))
    with torch.no_grad():
        blocks = [
            inner.encoder(inner.run_extractors(inputs[i : i + VAD_BLOCK])) for i in range(0, len(chunks), VAD_BLOCK)
        ]
        features = torch.cat(blocks).reshape(len(chunks), -1)
        rnn = inner.decoder.rnn
        gates_in = (features @ rnn.weight_ih.T + rnn.bias_ih + rnn.bias_hh).numpy()
        hidden = _lstm(gates_in, rnn.weight_hh.numpy())
        out = inner.decoder.decoder(torch.from_numpy(hidden).unsqueeze(-1))
    return out.reshape(len(chunks), -1).mean(dim=1).numpy().astype(np.float32)


def _vad_streaming(model, chunks: np.ndarray) -> np.ndarray:
    """The model's public call, one 512-sample chunk after another from a reset state."""
    import torch

    model.reset_states()
    with torch.no_grad():
        out = [model(torch.from_numpy(chunk)[None], VAD_RATE) for chunk in chunks]
    return torch.cat(out, dim=1)[0].numpy().astype(np.float32)


@functools.cache
def _vad() -> tuple[object, bool]:
    """The Silero VAD model shipped in the ``silero_vad`` package (TorchScript, CPU), loaded once per process, and
    whether :func:`_vad_batched` reproduces its streaming call."""
    import torch

    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # importing it sets torch's thread count to 1 for the whole process

    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in recent torch
        warnings.simplefilter("ignore", DeprecationWarning)  # silero_vad's use of importlib.resources.path
        model = load_silero_vad()
    model.eval()
    return model, _batched_matches(model)


def _batched_matches(model) -> bool:
    """Whether the batched path gives the streaming call's result on about two seconds of noise then tone."""
    t = np.arange(32 * VAD_CHUNK) / VAD_RATE
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    chunks = np.concatenate([noise, 0.3 * np.sin(2 * np.pi * 180 * t)]).astype(np.float32).reshape(-1, VAD_CHUNK)
    try:
        with _one_torch_thread():
            return bool(np.allclose(_vad_batched(model, chunks), _vad_streaming(model, chunks), atol=1e-4))
    except (AttributeError, RuntimeError, TypeError, ValueError):  # a model of another inner layout
        return False
