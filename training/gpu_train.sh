#!/usr/bin/env bash
# Train the light model (issue 27) on a lent GPU as ONE run: the device tool gives a task 15 minutes in all,
# machine start included, and sends 64 MiB at most, so the data travels packed (training/pack.py) and the run is
# sized by a short probe: 40 iterations measure the seconds an iteration takes, then the run resumes with as many
# iterations as fit in BUDGET seconds, the cosine schedule ending at zero on the last. Then the model-only speed of
# the bundled and the new light model on that GPU (fp32, fp16, bf16; 640x360, 1280x720, 1920x1080 frames).
#
# Prepare, on the CPU machine, in the repository root (.gpu-train is git-ignored: never commit it):
#   echo /.gpu-train/ >> .git/info/exclude
#   driving-detect train --config CONFIG --pack .gpu-train --short-side 416    # about 41 MB for our sets
# Try it here first (a dry run on the CPU that checks the script, not the numbers):
#   BUDGET=60 BATCH=2 WORKERS=2 PROBE=3 bash training/gpu_train.sh
# Then once on the GPU: device `run` with command "bash training/gpu_train.sh", timeout_s 600, carry
# [".gpu-train"]. $OUT gets the fp16 weights, the logs, the history and the timings; continue from the weights
# with init_weights, or evaluate them here: driving-detect evaluate ... model.weights=FILE.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu-train}
BUDGET=${BUDGET:-430} BATCH=${BATCH:-16} LR=${LR:-0.01} WORKERS=${WORKERS:-12} PROBE=${PROBE:-40}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
rm -rf runs/gpu
[ -f .gpu-train/train.yaml ] || { echo "error: .gpu-train/train.yaml is missing (see the header of $0)" >&2; exit 2; }

python3 - >"$OUT/machine.txt" 2>&1 <<'EOF'
import os, platform, subprocess, torch, torchvision
print("date", subprocess.run(["date", "-u", "+%F %T UTC"], capture_output=True, text=True).stdout.strip())
print("python", platform.python_version(), "torch", torch.__version__, "torchvision", torchvision.__version__,
      "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
print("cpu cores", os.cpu_count(), "flags", " ".join(f for f in flags if f.startswith(("avx512", "amx", "avx2"))))
EOF
cat "$OUT/machine.txt"

started=$SECONDS
TRAIN=(python3 -m commands.main train --config .gpu-train/train.yaml --out runs/gpu "batch_size=$BATCH" "lr=$LR"
       warmup_iters=100 "workers=$WORKERS" threads=0 epochs=1000 checkpoint_every=100 amp=false)
echo "== probe: $PROBE iterations"
"${TRAIN[@]}" "max_iters=$PROBE" 2>&1 | tr '\r' '\n' | grep -v "^epoch" | tee "$OUT/probe.log"
[ -f runs/gpu/last.pt ] || { echo "error: the probe wrote no checkpoint" >&2; exit 1; }
total=$(python3 - "$BUDGET" "$((SECONDS - started))" "$PROBE" <<'EOF'
import json, sys
budget, spent, probe = (float(v) for v in sys.argv[1:])
seconds = json.load(open("runs/gpu/history.json"))[-1]["seconds"]
startup = max(spent - seconds, 0)  # data, model and teacher loading, paid again on resume
print(int(probe) + max(int((budget - spent - startup) * probe / seconds), 0))
EOF
)
echo "== training to iteration $total"
timeout $((BUDGET + 60 - (SECONDS - started))) "${TRAIN[@]}" "max_iters=$total" --resume runs/gpu/last.pt 2>&1 |
    tr '\r' '\n' | awk '/^epoch/ && ++n % 20 != 0 {next} {print}' | tee "$OUT/train.log"
cp runs/gpu/history.json "$OUT/history.json"
python3 -m commands.main train --export runs/gpu/last.pt "$OUT/driving_mobilenet_v2_lite-gpu.pt"

echo "== model-only speed"
timeout 90 python3 - "$OUT/driving_mobilenet_v2_lite-gpu.pt" 2>&1 <<'EOF' | tee "$OUT/speed.log"
import statistics, sys, time
import cv2, torch
from detector.backend_torch import TorchBackend, resolve_device
from detector.config import BUNDLED_MODEL, DEFAULT_TOP_N, LITE_MODEL
from detector.weights import load_model

device = resolve_device("auto")
frame = cv2.imread(".gpu-train/source2/images/00000.webp")
precisions = ("fp32", "fp16", "bf16") if device.type == "cuda" else ("fp32",)
print(f"{'model':28} {'precision':9} {'frame':9} {'ms median':>9} {'min-max':>13}")
for name, weights in ((BUNDLED_MODEL, "default"), (LITE_MODEL, sys.argv[1])):
    for precision in precisions:
        model, class_map = load_model(name, weights, DEFAULT_TOP_N)
        backend = TorchBackend(model, class_map, device, precision)
        for width, height in ((640, 360), (1280, 720), (1920, 1080)):
            image = cv2.resize(frame, (width, height))
            times = []
            for i in range(30):
                start = time.perf_counter()
                backend(image)  # returns host arrays: the GPU work is done
                if i >= 5:
                    times.append((time.perf_counter() - start) * 1000)
            print(f"{name:28} {precision:9} {width}x{height:<4} {statistics.median(times):9.2f} "
                  f"{min(times):6.2f}-{max(times):6.2f}")
EOF
ls -la "$OUT"
