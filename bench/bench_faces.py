"""Face pipeline vs raw forward: ``abaw faces``' per-video path (PyAV decoding, resizing, RetinaFace, decoding and NMS,
the track's face, the aligned crop, the JPEG write) against the detector's forward pass alone on the same frames,
already decoded and resized in memory, with the same batch (same run).

    python bench/bench_faces.py [--frames 32] [--width 320 --height 240] [--detect-size 320] [--batch 8]

The network is RetinaFace's real architecture with random weights whose stride-32 head is set to fire, so every
frame has candidate faces to decode, suppress, choose and crop (speed does not depend on the weights' values).
Prints frames/s for both and their ratio (goal in DESIGN.md: pipeline >= 0.9x the raw forward), and the pipeline's
frames/s with one crop-writing thread instead of :func:`~harness.faces.extract.crop_threads` (what the pool gives).
"""

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from harness.data.synthetic.face import FaceCues, SubjectLook, draw_face, make_background
from harness.faces.detector import Detector, build_network
from harness.faces.extract import FaceSettings, crop_threads, extract_video, iter_frames


def write_video(path: Path, frames: int, width: int, height: int) -> None:
    """A drawn-face h264 video (the synthetic generator's painter), the face drifting across the frame."""
    import av

    rng = np.random.default_rng(0)
    look, background = SubjectLook.random(rng), make_background(height, width, rng)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            canvas = background.copy()
            centre = (width / 2 + 20 * np.sin(index / 10), height / 2)
            draw_face(canvas, centre, 0.5 * height, 0.1 * np.sin(index / 7), FaceCues(), look)
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def firing_network() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network()
    with torch.no_grad():
        head = net.face_rpn_stride32
        head.cls_score.weight.zero_()
        head.cls_score.bias.copy_(torch.tensor([-8.0, -8.0, 8.0, 8.0]))
    return net.eval()


def run(frames: int, width: int, height: int, detect_size: int, batch: int, repeats: int) -> dict:
    on = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = FaceSettings(detect_size=detect_size, batch=batch)
    detector = Detector(firing_network().to(on), detect_size, settings.threshold, settings.nms_iou)
    with tempfile.TemporaryDirectory() as scratch:
        video = Path(scratch) / "clip.mp4"
        write_video(video, frames, width, height)
        decoded = np.stack(list(iter_frames(video)))
        inputs = [detector.prepare(decoded[i : i + batch])[0] for i in range(0, len(decoded), batch)]

        def raw() -> None:
            for pixels in inputs:
                detector.forward(pixels)
            if on.type == "cuda":
                torch.cuda.synchronize()

        def pipeline(threads: int | None = None) -> None:
            folder = Path(tempfile.mkdtemp(dir=scratch))
            (result,) = extract_video(detector, video, {"clip": folder / "clip"}, settings, threads=threads)
            assert result.crops == frames, result

        raw()  # warm-up
        detector.detect(decoded[:batch])  # and the decoding's first use (it imports torchvision's NMS)
        timings = {"raw": [], "pipeline": [], "one_crop_thread": []}
        for _ in range(repeats):  # alternated, so all see the same machine load
            timings["raw"].append(_timed(raw))
            timings["pipeline"].append(_timed(pipeline))
            timings["one_crop_thread"].append(_timed(lambda: pipeline(threads=1)))
    raw_fps, pipeline_fps = frames / min(timings["raw"]), frames / min(timings["pipeline"])
    return {
        "frames": frames,
        "video": f"{width}x{height}",
        "detect_size": detect_size,
        "batch": batch,
        "device": str(on),
        "threads": torch.get_num_threads(),
        "crop_threads": crop_threads(on),
        "raw_frames_per_s": round(raw_fps, 2),
        "pipeline_frames_per_s": round(pipeline_fps, 2),
        "ratio": round(pipeline_fps / raw_fps, 3),
        "one_crop_thread_frames_per_s": round(frames / min(timings["one_crop_thread"]), 2),
    }


def _timed(job) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--detect-size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    result = run(
        arguments.frames, arguments.width, arguments.height, arguments.detect_size, arguments.batch, arguments.repeats
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
