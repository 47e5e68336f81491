"""The `paper` architectures end to end on a few tracks: EfficientNet-B1 and ViT-B/16 at 224 px, a PDEM-sized
wav2vec2 (random weights, saved and loaded through the real local-folder path), the dynamic Transformer, KELM and
DWF, trained for a few steps under the `paper` profile in a scratch store.

    python bench/paper_check.py [--data ROOT] [--videos 3 3 1] [--frames 60] [--out out/paper-check]
    make paper-check

It proves that every kind runs at its published size (shapes, memory, the pretrained-false path, the local PDEM
folder) and measures the cost per node on this machine: seconds to train and to predict, face crops per second,
peak memory. The source dataset is ``--data``, else the synthetic ``small`` one (generated under $ABAW_HOME on first
use); the check runs on a subset of it (``--videos`` train / validation / test videos, each track cut to its first
``--frames`` frames). Scores mean nothing here (random weights, one epoch on a few tracks).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import torch

from harness.data.affwild2 import Dataset
from harness.data.root import synthetic_dataset
from harness.data.subset import choose_videos, write_subset
from harness.leaderboard import Leaderboard
from harness.models.pdem import PdemModel, pdem_config
from harness.models.training import device
from harness.runner import run_system
from harness.store import Store

QUICK = "epochs: 1, patience: 1"
SPECS = {
    "pc_video_b1": "kind: video\ntasks: [va, expr]\nseed: 0\nprofiles:\n  paper: {backbone: efficientnet_b1, "
    "image_size: 224, pretrained: false, frame_step: 10, eval_step: 10, batch_size: 16, " + QUICK + "}\n",
    "pc_video_vit": "kind: video\ntasks: [va, expr]\nseed: 0\nprofiles:\n  paper: {backbone: vit_base_patch16_224, "
    "image_size: 224, pretrained: false, frame_step: 10, eval_step: 10, batch_size: 16, " + QUICK + "}\n",
    "pc_audio_v3": "kind: audio\ntasks: [va, expr]\nseed: 0\nhead: transformer\ntrainable_blocks: 4\n"
    "profiles:\n  paper: {pdem: PDEM, batch_size: 4, " + QUICK + "}\n",
    "pc_dynamic_b1": "kind: dynamic\ntasks: [va]\ninputs: [pc_video_b1]\nseed: 0\nwindow_s: 6\n"
    "profiles:\n  paper: {" + QUICK + "}\n",
    "pc_dynamic_vit": "kind: dynamic\ntasks: [expr]\ninputs: [pc_video_vit]\nseed: 0\nwindow_s: 4\n"
    "profiles:\n  paper: {" + QUICK + "}\n",
    "pc_kelm": "kind: kelm\ntasks: [va, expr]\ninputs: [pc_video_b1]\nseed: 0\nwindow_s: 4\n",
    "pc_dwf": "kind: dwf\ntasks: [va, expr]\ninputs: [pc_audio_v3, pc_dynamic_b1, pc_dynamic_vit, pc_kelm]\nseed: 0\n",
}


def source_root(data: Path | None) -> Path:
    """``--data``, else the synthetic ``small`` dataset (generated on first use)."""
    return data if data is not None else synthetic_dataset("small")


def random_pdem(folder: Path) -> Path:
    """A PDEM-sized wav2vec2 with random weights, saved as a local model folder (as the real one is kept)."""
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        PdemModel(pdem_config()).save_pretrained(folder, safe_serialization=True)
    return folder


def device_name(on: torch.device) -> str:
    """The GPU's name, or the CPU's model name and core count."""
    if on.type == "cuda":
        return torch.cuda.get_device_name(on)
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
    ]
    return f"{names[0] if names else platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="source dataset (default: synthetic small)")
    parser.add_argument("--videos", type=int, nargs=3, default=[3, 3, 1], help="train, validation, test videos")
    parser.add_argument("--frames", type=int, default=60, help="frames kept of each track")
    parser.add_argument("--out", type=Path, default=Path("out/paper-check"))
    args = parser.parse_args()

    source = Dataset(source_root(args.data))
    subset = args.out / "data"
    shutil.rmtree(subset, ignore_errors=True)
    shutil.rmtree(args.out / "store", ignore_errors=True)
    videos = choose_videos(source, dict(zip(("train", "validation", "test"), args.videos, strict=True)))
    dataset = Dataset(write_subset(source, subset, videos, args.frames))
    pdem = random_pdem(args.out / "pdem-random")
    systems = args.out / "systems"
    systems.mkdir(parents=True, exist_ok=True)
    for name, text in SPECS.items():
        (systems / f"{name}.yaml").write_text(text.replace("PDEM", str(pdem.resolve())))
    store, board = Store(args.out / "store"), Leaderboard(args.out / "board.sqlite")
    on = device()
    print(
        f"paper check on {on} ({torch.cuda.get_device_name(on) if on.type == 'cuda' else platform.processor()}), "
        f"subset of {source.root}: {videos}, {args.frames} frames a track",
        flush=True,
    )
    start = time.perf_counter()
    results = run_system("pc_dwf", ["va", "expr"], dataset, "paper", store, board, systems)
    rows = []
    for result in results:
        crops = sum(
            len(dataset.split(result.plan.task, s).face_frames(t))
            for s in ("train", "validation", "test")
            for t in dataset.split(result.plan.task, s).names
        )
        peak = result.peak_memory_mb or {}  # each node's own high-water marks (harness.memory)
        rows.append(
            {
                "system": result.plan.name,
                "task": result.plan.task,
                "train_s": result.train_seconds,
                "infer_s": result.infer_seconds,
                "crops": crops,
                "peak_rss_mb": peak.get("rss"),
                "peak_gpu_mb": peak.get("gpu"),
            }
        )
    # the nodes' own high-water marks: the runner resets them before each node, which also blinds ru_maxrss
    rss_peaks = [row["peak_rss_mb"] for row in rows if row["peak_rss_mb"] is not None]
    peak_gb = max(rss_peaks) / 2**10 if rss_peaks else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    gpu_peaks = [row["peak_gpu_mb"] for row in rows if row["peak_gpu_mb"] is not None]
    report = {
        "device": str(on),
        "device_name": device_name(on),
        "gpu_peak_gb": max(gpu_peaks) / 2**10 if gpu_peaks else None,  # the largest node's
        "peak_rss_gb": peak_gb,
        "seconds": time.perf_counter() - start,
        "videos": videos,
        "frames_per_track": args.frames,
        "nodes": rows,
    }
    (args.out / "paper-check.json").write_text(json.dumps(report, indent=2))
    print(f"{'system':<16} {'task':<5} {'train s':>8} {'infer s':>8} {'crops/s':>8} {'RSS MiB':>8} {'GPU MiB':>8}")
    for row in rows:
        per_second = row["crops"] / row["infer_s"] if row["system"].startswith("pc_video") and row["infer_s"] else None
        print(
            f"{row['system']:<16} {row['task']:<5} {row['train_s'] or 0:>8.1f} {row['infer_s'] or 0:>8.1f} "
            f"{per_second or 0:>8.1f} {row['peak_rss_mb'] or 0:>8.0f} {row['peak_gpu_mb'] or 0:>8.0f}"
        )
    print(
        f"all nodes in {report['seconds']:.0f} s; peak memory {peak_gb:.1f} GB (resident, largest node)"
        + (f", GPU {report['gpu_peak_gb']:.1f} GB" if report["gpu_peak_gb"] is not None else "")
    )


if __name__ == "__main__":
    main()
