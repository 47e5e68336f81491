"""Make one synthetic raw video: draw its people frame by frame, encode it with its voice track, cut aligned crops.

The crops are cut from the very frames that go into the video, rotated so the eyes are level (as the organizers'
``cropped_aligned`` faces are), and each frame's face box and eye positions are recorded so that face pipelines can
be checked against the truth.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.synthetic.audio import Voice, speech_activity, synthesize_speech, turns
from harness.data.synthetic.aus import video_aus
from harness.data.synthetic.face import SubjectLook, draw_face, make_background
from harness.data.synthetic.plan import VideoPlan
from harness.data.synthetic.signals import TrackSignals, face_cues, smooth_process, track_signals
from harness.data.synthetic.vocal import draw_events, vocal_cues

CROP_SIZE = 112
CROP_MARGIN = 1.25  # crop side over face height
SYNTH_RATE = 16000  # the voice is synthesised at 16 kHz, then resampled to the container's rate
FACE_HEIGHT = 112.0
AUDIO_CHUNK = 1024
FACE_COLUMNS = ("frame", "track", "x0", "y0", "x1", "y1", "left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y")


@dataclass
class RenderedVideo:
    """What the writer needs back: per-track signals and speaking, and the true face positions."""

    plan: VideoPlan
    signals: dict[str, TrackSignals]
    aus: dict[str, np.ndarray]  # per track: AU labels as written (see aus.track_aus)
    speaking: dict[str, np.ndarray]  # per track: frames where *this* track's person speaks
    heard: np.ndarray  # (n_frames, 2) valence/arousal the voice carries, NaN where nobody speaks
    vocal: np.ndarray  # (n_frames, 7) expression cues the voice carries (see vocal.vocal_cues)
    faces: list[tuple]  # FACE_COLUMNS rows


def render_video(plan: VideoPlan, root: Path, seed: int) -> RenderedVideo:
    """Write ``plan``'s video file and crops under ``root``; return its signals and face truth."""
    rng = np.random.default_rng([seed, 1, plan.index])
    fps = float(plan.fps)
    n = plan.n_frames
    signals = {t.name: track_signals(plan.n_labels, fps, rng, t.late_start) for t in plan.tracks}
    aus = video_aus(plan, signals, seed)
    looks = [SubjectLook.random(rng) for _ in plan.tracks]
    voices = [Voice.random(rng) for _ in plan.tracks]
    paths = [_motion(plan, position, rng) for position in range(len(plan.tracks))]

    active = speech_activity(n, fps, rng)
    speaker = turns(n, fps, rng) if len(plan.tracks) == 2 else np.zeros(n, dtype=np.int64)
    curves = np.stack([_fit(s.audio_va, n) for s in signals.values()])  # (tracks, n, 2)
    voiced = curves[speaker, np.arange(n)]
    expression = np.stack([_fit(s.expr, n) for s in signals.values()])[speaker, np.arange(n)]
    # The voice draws from its own stream, so a change to the speech synthesis leaves every video frame as it was.
    voice_rng = np.random.default_rng([seed, 2, plan.index])
    events = draw_events(expression, fps, voice_rng)
    waveform = synthesize_speech(
        voiced[:, 1], voiced[:, 0], active, voices, fps, SYNTH_RATE, voice_rng, speaker, expression, events
    )
    speaking = {t.name: active & (speaker == position) for position, t in enumerate(plan.tracks)}

    background = make_background(plan.size[1], plan.size[0], rng)
    grain = rng.normal(0.0, 3.0, size=(4, *background.shape)).astype(np.int16)
    crop_dirs = [root / plan.crops_folder / t.name for t in plan.tracks]
    for folder in crop_dirs:
        folder.mkdir(parents=True, exist_ok=True)
    faces: list[tuple] = []
    video_path = root / plan.folder / f"{plan.name}{plan.suffix}"
    video_path.parent.mkdir(parents=True, exist_ok=True)
    with _Encoder(video_path, plan, _resample(waveform, plan.audio_rate)) as encoder:
        for index in range(n):
            canvas = background.copy()
            drawn = []
            for position, track in enumerate(plan.tracks):
                track_signal = signals[track.name]
                row = min(index, plan.n_labels - 1)
                if index < plan.n_labels and not track_signal.face[index]:
                    continue
                center, height, roll = paths[position][0][index], paths[position][1][index], paths[position][2][index]
                cues = face_cues(track_signal.cues[row])
                marks = draw_face(canvas, tuple(center), float(height), float(roll), cues, looks[position])
                drawn.append((position, track.name, marks))
            canvas = np.clip(canvas.astype(np.int16) + grain[index % len(grain)], 0, 255).astype(np.uint8)
            image = Image.fromarray(canvas)
            for position, name, marks in drawn:
                _aligned_crop(image, marks).save(crop_dirs[position] / f"{index + 1:05d}.jpg", quality=92)
                faces.append((index + 1, name, *marks.box, *marks.left_eye, *marks.right_eye))
            encoder.add_frame(canvas, index)
    heard = np.where(active[:, None], voiced, np.nan)
    return RenderedVideo(plan, signals, aus, speaking, heard, vocal_cues(expression, active, events, fps), faces)


def _fit(values: np.ndarray, n: int) -> np.ndarray:
    """Label-length curve fitted to the container's frame count (repeat the last row / truncate)."""
    if len(values) >= n:
        return values[:n]
    return np.concatenate([values, np.repeat(values[-1:], n - len(values), axis=0)])


def _motion(plan: VideoPlan, position: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth head path of one person: centre (n, 2), face height (n,), roll (n,)."""
    width, height = plan.size
    n, fps = plan.n_frames, float(plan.fps)
    slots = len(plan.tracks)
    base = np.array([width * (2 * position + 1) / (2 * slots), height / 2])
    center = base + np.stack([smooth_process(n, fps, rng, 2.0, 10.0), smooth_process(n, fps, rng, 2.0, 6.0)], axis=1)
    size = FACE_HEIGHT * rng.uniform(0.9, 1.1) + smooth_process(n, fps, rng, 3.0, 5.0)
    roll = smooth_process(n, fps, rng, 2.5, 0.1)
    return center, size, roll


def _aligned_crop(image: Image.Image, marks) -> Image.Image:
    """112×112 crop centred on the face box, rotated so the eyes are level, scaled so the face fills it."""
    (lx, ly), (rx, ry) = marks.left_eye, marks.right_eye
    angle = math.atan2(ry - ly, rx - lx)
    x0, y0, x1, y1 = marks.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = CROP_MARGIN * (y1 - y0) / CROP_SIZE
    a, b = scale * math.cos(angle), -scale * math.sin(angle)
    d, e = scale * math.sin(angle), scale * math.cos(angle)
    half = CROP_SIZE / 2
    coefficients = (a, b, cx - half * (a + b), d, e, cy - half * (d + e))
    return image.transform((CROP_SIZE, CROP_SIZE), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR)


def _resample(waveform: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(waveform, SYNTH_RATE, rate).astype(np.float32)


class _Encoder:
    """PyAV muxer: h264 in .mp4 with AAC, MPEG-4 part 2 in .avi with 16-bit PCM; audio interleaved by time."""

    def __init__(self, path: Path, plan: VideoPlan, audio: np.ndarray) -> None:
        self.path, self.plan, self.audio = path, plan, audio
        self.audio_done = 0

    def __enter__(self) -> "_Encoder":
        import av

        self.container = av.open(str(self.path), mode="w")
        avi = self.plan.suffix == ".avi"
        self.video = self.container.add_stream("mpeg4" if avi else "libx264", rate=self.plan.fps)
        self.video.width, self.video.height = self.plan.size
        self.video.pix_fmt = "yuv420p"
        if avi:
            self.video.bit_rate = 800_000
        else:
            self.video.options = {"preset": "ultrafast", "crf": "26"}
        self.sound = self.container.add_stream("pcm_s16le" if avi else "aac", rate=self.plan.audio_rate, layout="mono")
        return self

    def add_frame(self, rgb: np.ndarray, index: int) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = index
        self.container.mux(self.video.encode(frame))
        self._audio_until(int((index + 1) / float(self.plan.fps) * self.plan.audio_rate))

    def _audio_until(self, sample: int) -> None:
        import av

        sample = min(sample, len(self.audio))
        pcm = self.plan.suffix == ".avi"
        while self.audio_done + AUDIO_CHUNK <= sample or (sample == len(self.audio) and self.audio_done < sample):
            chunk = self.audio[self.audio_done : self.audio_done + AUDIO_CHUNK]
            if pcm:
                data = (np.clip(chunk, -1, 1) * 32767).astype(np.int16)[None, :]
                frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
            else:
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self.plan.audio_rate
            frame.pts = self.audio_done
            self.container.mux(self.sound.encode(frame))
            self.audio_done += len(chunk)

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self._audio_until(len(self.audio))
                self.container.mux(self.video.encode(None))
                self.container.mux(self.sound.encode(None))
        finally:
            self.container.close()
