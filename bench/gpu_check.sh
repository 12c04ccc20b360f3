#!/usr/bin/env bash
# The GPU measurement of the "real-time by default" work, as ONE run on a lent GPU (the device tool gives a task
# 15 minutes in all, machine start included): torch fp32, fp16 and bf16 and the default (`auto`) on CUDA,
# model-only against the threaded pipeline, a model.workers sweep, run_stream.py's default run, and auto
# model.workers on that machine's many CPU cores against the old fixed 2 x 1 (on the CPU); ONNX Runtime's
# CUDA and TensorRT providers too when that machine has them (onnxruntime-gpu's wheel, 255 MB, is over the
# 64 MiB a call may carry, so usually it has not).
#
# Prepare, on the CPU machine, in the repository root (.whl and .gpu-data are git-ignored, never committed):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av==19.0.2 supervision==0.31.2 \
#     trackers==2.6.1 defusedxml==0.7.1 pydeprecate==0.13.2 starlette==1.10.0 uvicorn==0.55.0
#   ln -s ../shared/data/videos/tmo324_lane_detecting .gpu-data   # a link: the clip is read in place, not copied
# Try it here first (no CUDA: a short dry run on the CPU that checks the script, not the numbers):
#   bash bench/gpu_check.sh
# Then once on the GPU: device `run` with command "bash bench/gpu_check.sh", timeout_s 480,
# carry [".whl", ".gpu-data/seattlestreet1.mp4"]. Everything it measured is in $OUT (7 files). That machine's
# python3 has its own torch (2.11 when last read, device/KINDS.md), not the 2.14.1 pinned here: machine.txt says which.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu-check}
CLIP=${CLIP:-.gpu-data/seattlestreet1.mp4}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null && ! python3 -c "import av, supervision, trackers, starlette" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
[ -f "$CLIP" ] || { echo "error: clip '$CLIP' is missing (see the header of $0)" >&2; exit 2; }

python3 - >"$OUT/machine.txt" 2>&1 <<'EOF'
import platform, subprocess, torch
print("date", subprocess.run(["date", "-u", "+%F %T UTC"], capture_output=True, text=True).stdout.strip())
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv"], capture_output=True, text=True).stdout.strip())
try:
    import onnxruntime
    print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
except ImportError:
    print("onnxruntime missing")
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
print("cpu", platform.processor() or platform.machine(), "cores", __import__("os").cpu_count(),
      "flags", " ".join(f for f in flags if f.startswith(("avx512", "amx", "avx2", "avx_vnni"))))
EOF
cat "$OUT/machine.txt"

if python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    DEVICE=cuda FRAMES=200 REPEATS=3 BACKENDS=auto,torch,torch-fp16,torch-bf16
    if python3 -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
        BACKENDS="$BACKENDS,onnx,onnx-fp16"
    fi
else
    echo "no CUDA here: dry run on the CPU"
    DEVICE=cpu FRAMES=20 REPEATS=1 BACKENDS=auto,torch
fi
BENCH=(python3 -m commands.main benchmark --source "$CLIP" --frames "$FRAMES" --onnx-dir /tmp/gpu-check-onnx
       --benchmark-log "$OUT/benchmark.csv" "model.device=$DEVICE")

echo "== backends ($BACKENDS) on $DEVICE, $FRAMES frames x $REPEATS"
timeout 300 "${BENCH[@]}" --repeats "$REPEATS" --backends "$BACKENDS" 2>&1 | tee "$OUT/benchmark.log"
echo "== model.workers sweep, torch-fp16"
for workers in 1 4; do
    timeout 90 "${BENCH[@]}" --repeats 1 --backends torch-fp16 "model.workers=$workers" 2>&1 | tail -4
done | tee "$OUT/workers.log"
echo "== run_stream.py default config"
timeout 120 python3 run_stream.py --source "$CLIP" --max-frames 300 --benchmark-log "$OUT/benchmark.csv" \
    output.dir=/tmp/gpu-check 2>&1 | tr '\r' '\n' | grep -v "^stream: " | tee "$OUT/stream.log"
cp /tmp/gpu-check/*/benchmark.json "$OUT/stream.json"
echo "== auto model.workers on the CPU ($(nproc) cores) against 2 x 1"
for layout in model.workers=0 "model.workers=2 model.threads=1"; do
    # shellcheck disable=SC2086 # the layout is two overrides
    timeout 90 python3 -m commands.main benchmark --source "$CLIP" --frames 100 --repeats 1 --backends auto \
        --onnx-dir /tmp/gpu-check-onnx --benchmark-log "$OUT/benchmark.csv" model.device=cpu $layout 2>&1 |
        grep -E "runtime: | (model-only|pipeline) +[0-9]"
done | tee "$OUT/cpu-workers.log"
ls -la "$OUT"
