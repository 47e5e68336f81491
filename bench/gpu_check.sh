#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one short run (about 9 minutes on an H200), each step under its own time
# limit so that one slow step cannot take the others down:
#   0. the GPU-only tests (tests/test_cuda_graph.py: graphed inference, the extraction loop through it)
#   1. extraction pipeline vs raw forward, EfficientNet-B1 and ViT-B/16 at 224 px (bench/bench_video.py), batch 64
#      and 256, and EfficientNet-B1 with 4 decoding workers instead of one per core
#   2. where the pipeline's time goes, for both models at batch 64, and what resizing on the GPU would give
#      (bench/bench_video.py --variants)
#   3. EfficientNet-B1 training steps through the training loader (random flips in the spec's 2 workers, and in one
#      per core) vs on pixels already on the GPU (bench/bench_video.py --train)
#   4. audio seconds encoded per second by the PDEM-sized wav2vec2 (bench/bench_audio.py --config large)
#   5. `abaw faces`' per-video path vs RetinaFace's forward at 640 px on 640×360 video (bench/bench_faces.py)
#   6. the paper architectures for one epoch on a subset of `small` (bench/paper_check.py, as make paper-check)
#
#   bash bench/gpu_check.sh [PAPER_CHECK_ARGS...]    # e.g. --data ROOT --frames 150 (default: synthetic small)
#   make gpu-check
#
# One log (gpu-check.log, every step's output), the machine (machine.txt) and paper-check.json go to $GPU_CHECK_OUT
# (default out/gpu-check); PYTHON picks the interpreter (default python3).
set -uo pipefail
out=${GPU_CHECK_OUT:-out/gpu-check}
python=${PYTHON:-python3}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

log="$out/gpu-check.log"
: >"$log"
step() {  # step NAME SECONDS COMMAND...: run it under a time limit, its output to the terminal and the log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s)" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  "$python" -c "import os, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), os.cpu_count(), 'CPUs')"
  df -h /dev/shm | tail -1
} | tee "$out/machine.txt"

video() {  # video NAME BACKBONE BATCH CORES: one bench_video run, its decoding workers from a CPU budget of CORES
    step "$1" 60 env ABAW_THREADS="$4" "$python" bench/bench_video.py --backbone "$2" --size 224 --images 8192 \
        --batch "$3" --repeats 2
}
variants() {  # variants NAME BACKBONE
    step "$1" 100 "$python" bench/bench_video.py --variants --backbone "$2" --size 224 --images 8192 --batch 64 \
        --repeats 2
}
train() {  # train NAME WORKERS: bench_video --train with WORKERS decoding processes
    step "$1" 60 "$python" bench/bench_video.py --train --backbone efficientnet_b1 --size 224 --images 4096 \
        --batch 64 --workers "$2" --repeats 1
}
# most telling first: a run cut short keeps them
cores=$(nproc)
step gpu_tests 90 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py
video video_b1 efficientnet_b1 64 "$cores"
variants video_b1_variants efficientnet_b1
video video_vit vit_base_patch16_224 64 "$cores"
variants video_vit_variants vit_base_patch16_224
video video_b1_batch256 efficientnet_b1 256 "$cores"
video video_b1_5cores efficientnet_b1 64 5  # 4 decoding workers: does the main process gain from idle cores?
train video_b1_train_2workers 2
paper_out=${PAPER_CHECK_OUT:-/tmp/paper-check}
step paper_check 150 "$python" bench/paper_check.py "$@" --out "$paper_out"
step faces_640 60 "$python" bench/bench_faces.py --frames 384 --width 640 --height 360 --detect-size 640 --batch 32
video video_vit_batch256 vit_base_patch16_224 256 "$cores"
train video_b1_train_all_cores $((cores - 1))
step audio_pdem_large 60 "$python" bench/bench_audio.py --config large --seconds 600 --windows 64
cp "$paper_out/paper-check.json" "$out/" 2>/dev/null || echo "no paper-check.json (see gpu-check.log)"
