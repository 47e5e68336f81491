"""Facts about the media files of a track: a raw video's real fps and frame count, and which face crops exist.

fps comes from the container (PyAV), never from the file name: Aff-Wild2 names such as ``10-60-1280x720`` are
not reliable. The frame count is the container's when it states one, else the number of video packets.
"""

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from harness.data.templates import location_problem
from harness.errors import DataError

FACE_SUFFIX = ".jpg"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a raw video."""

    path: Path
    fps: Fraction
    n_frames: int
    width: int
    height: int
    has_audio: bool
    audio_rate: int | None

    @property
    def duration_s(self) -> float:
        return float(self.n_frames / self.fps)


def probe_video(path: Path) -> VideoInfo:
    """Read fps, frame count, size and audio presence of ``path`` from its container headers."""
    import av  # PyAV links FFmpeg: import only when a video is actually opened

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise DataError(f"{path}: the container states no frame rate")
            n_frames = stream.frames or _count_packets(container, stream)
            audio = container.streams.audio[0] if container.streams.audio else None
            return VideoInfo(
                path=path,
                fps=Fraction(rate),
                n_frames=int(n_frames),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                has_audio=audio is not None,
                audio_rate=audio.codec_context.sample_rate if audio is not None else None,
            )
    except av.FFmpegError as error:
        raise DataError(f"{path}: unreadable or truncated video ({error}); re-copy or re-download the file") from error


def _count_packets(container, stream) -> int:
    """Frame count by demuxing (no decoding), for containers that do not state it."""
    return sum(1 for packet in container.demux(stream) if packet.size)


def broken_link(path: Path) -> str:
    """The problem of a symbolic link whose target is gone."""
    return f"{path}: a symbolic link to {os.readlink(path)}, which does not exist; restore its target or remove it"


def list_face_frames(folder: Path) -> np.ndarray:
    """1-based frame numbers of the face crops ``{i:05d}.jpg`` in ``folder``, sorted; gaps are normal."""
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.endswith(FACE_SUFFIX)]
    except OSError as error:
        raise DataError(f"{folder}: cannot list the face crops ({error})") from error
    gone = [entry.path for entry in entries if entry.is_symlink() and not os.path.exists(entry.path)]
    if gone:  # only links cost a stat: the release's crops are files
        raise DataError(f"{broken_link(Path(gone[0]))} ({len(gone)} such crops in this folder)")
    names = [entry.name for entry in entries]
    frames = np.empty(len(names), dtype=np.int64)
    for index, name in enumerate(names):
        problem = location_problem(f"track/{name}")  # the rule of template and prediction rows
        if problem:
            hint = "; a macOS archive's resource file: delete the ._* files" if name.startswith("._") else ""
            raise DataError(
                f"{folder / name}: face crop names must be the 1-based frame number in 5 digits, e.g. 00001.jpg "
                f"(found {problem}){hint}"
            )
        frames[index] = int(name[: -len(FACE_SUFFIX)])
    frames.sort()
    return frames


def face_path(folder: Path, frame: int) -> Path:
    """Path of the crop of 1-based ``frame`` in a track's crop folder."""
    return folder / f"{frame:05d}{FACE_SUFFIX}"
