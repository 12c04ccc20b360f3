"""Which runtime and precision run the detector: `choose_runtime` resolves ``backend=auto`` and ``precision=auto``.

Real-time must be the default, not an expert setting: on a CPU the same exported graph runs several times faster
in OpenVINO than in torch eager mode (docs/benchmarks.md, "Real-time by default"). The choice is a pure function
of the config and a `Machine` (what is installed, what the CPU computes natively), so it is tested with fakes;
`probe_machine` looks at the real one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import warnings
from dataclasses import dataclass
from importlib.util import find_spec

from core.config import ConfigError
from detector.config import ModelConfig

log = logging.getLogger(__name__)

GPU_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

# Precisions each backend can run, per device; the first entry of AUTO_PRECISION that a backend and machine
# support is what ``precision=auto`` picks. Only precisions measured to cost <= 1 point of car AP@0.5 and
# road-sign mAP@0.5 against fp32 on our val sets are listed there (docs/benchmarks.md, "Real-time by default").
SUPPORTED = {
    ("torch", "cpu"): ("fp32", "bf16"),
    ("torch", "cuda"): ("fp32", "fp16", "bf16"),
    ("onnx", "cpu"): ("fp32", "int8"),
    ("onnx", "cuda"): ("fp32", "fp16"),
    ("openvino", "cpu"): ("fp32", "bf16", "int8"),
}
AUTO_PRECISION = {
    ("torch", "cpu"): ("fp32",),
    ("torch", "cuda"): ("fp16", "fp32"),
    ("onnx", "cpu"): ("fp32",),
    ("onnx", "cuda"): ("fp16", "fp32"),
    # int8: 0.5 points of car AP and 0.1 of road-sign mAP lost, 1.8x fp32 model-only; bf16: 1.4 and 1.3 (same section)
    ("openvino", "cpu"): ("int8", "fp32"),
}
# int8 pays only with int8 dot-product instructions: on an AVX2-only EPYC it was measured no faster than fp32
# (OpenVINO 0.97x with 2 streams, 0.78x on one thread; ONNX Runtime 0.93x), so ``auto`` keeps fp32 there.
INT8_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8")
FALLBACK = {"bf16": "fp32", "fp16": "fp32", "int8": "fp32"}


@dataclass(frozen=True)
class Machine:
    """What the runtime choice depends on.

    cuda: a CUDA device is present; openvino / onnxruntime: the package is installed; ort_gpu: ONNX Runtime has its
    CUDA provider; cpu_bf16: the CPU computes bf16 natively (AVX512-BF16 or AMX), as OpenVINO reports it;
    no_calibration: why no int8 graph can be built here (no saved ranges apply and the calibration frames are
    missing), '' when one can;
    cores: the physical cores this process may use (`usable_cores`);
    speeds: ms a frame per precision measured on this CPU (`detector.precision_timing`), empty when not measured:
    ``precision=auto`` then picks the fastest of its candidates instead of following the instruction-set rule.
    """

    cuda: bool
    openvino: bool
    onnxruntime: bool
    ort_gpu: bool
    cpu_bf16: bool
    cpu_int8: bool = False
    no_calibration: str = ""
    cores: int = 2
    speeds: dict[str, float] = dataclasses.field(default_factory=dict)


def probe_machine(cfg: ModelConfig | None = None) -> Machine:
    """This machine; with ``cfg``, also whether an int8 graph can be calibrated for it."""
    import torch

    openvino = find_spec("openvino") is not None
    onnxruntime = find_spec("onnxruntime") is not None
    ort_gpu = False
    if onnxruntime:
        import onnxruntime as ort

        ort_gpu = "CUDAExecutionProvider" in ort.get_available_providers()
    cpu_bf16 = False
    if openvino:
        import openvino as ov

        cpu_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    else:
        cpu_bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    capabilities = torch.cpu.get_capabilities()
    cpu_int8 = any(capabilities.get(flag, False) for flag in INT8_DOT_PRODUCT)
    no_calibration = ""
    if cfg is not None:
        from detector.export_cache import int8_unavailable  # exporting imports torch.onnx: only when asked

        no_calibration = int8_unavailable(cfg)
    return Machine(torch.cuda.is_available(), openvino, onnxruntime, ort_gpu, cpu_bf16, cpu_int8, no_calibration,
                   usable_cores())


def usable_cores() -> int:
    """Physical cores this process may use: its CPU affinity and a container's CPU quota both count, which
    ``os.cpu_count()`` ignores (joblib reads them on every OS)."""
    from joblib import cpu_count

    # Without lscpu it counts logical cores instead and says so with a warning and a traceback on stderr
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return max(1, cpu_count(only_physical_cores=True))


def device_kind(cfg: ModelConfig, cuda: bool) -> str:
    """``cpu`` or ``cuda`` for ``model.device`` when a CUDA device is (``cuda``) or is not present."""
    if cfg.device == "cuda" and not cuda:
        raise ConfigError("'model.device' = 'cuda' but no CUDA device is available; use auto or cpu")
    return "cuda" if cfg.device != "cpu" and cuda else "cpu"


def pick_backend(cfg: ModelConfig, machine: Machine, device: str) -> tuple[str, str]:
    """The backend and why; an explicit one that is not installed is a `ConfigError`."""
    if cfg.backend == "openvino" and not machine.openvino:
        raise ConfigError("'model.backend' = 'openvino' but OpenVINO is not installed (pip install openvino)")
    if cfg.backend == "openvino" and device == "cuda":
        raise ConfigError("'model.backend' = 'openvino' runs on the CPU here; set model.device=cpu")
    if cfg.backend == "onnx" and not machine.onnxruntime:
        raise ConfigError("'model.backend' = 'onnx' but ONNX Runtime is not installed (pip install onnxruntime)")
    if cfg.backend != "auto":
        return cfg.backend, "as configured"
    if cfg.onnx_path:
        return "onnx", "model.onnx_path names an exported graph"
    if device == "cuda":
        if machine.onnxruntime and machine.ort_gpu:
            return "onnx", "CUDA device and ONNX Runtime with GPU providers (TensorRT, then CUDA)"
        return "torch", "CUDA device; ONNX Runtime has no GPU provider here"
    if machine.openvino:
        return "openvino", "CPU and OpenVINO installed (the fastest CPU runtime measured)"
    if machine.onnxruntime:
        return "onnx", "CPU without OpenVINO; ONNX Runtime installed"
    return "torch", "CPU without OpenVINO or ONNX Runtime"


def supported_precisions(machine: Machine, backend: str, device: str) -> list[str]:
    """What ``backend`` can run on ``device`` here: bf16 needs a CPU that computes it, int8 a calibration."""
    return [p for p in SUPPORTED[(backend, device)] if (p != "bf16" or device == "cuda" or machine.cpu_bf16)
            and (p != "int8" or not machine.no_calibration)]


def auto_candidates(machine: Machine, backend: str, device: str) -> list[str]:
    """The precisions ``precision=auto`` chooses among on this machine (AUTO_PRECISION's, where supported)."""
    supported = supported_precisions(machine, backend, device)
    return [p for p in AUTO_PRECISION[(backend, device)] if p in supported]


def pick_precision(cfg: ModelConfig, machine: Machine, backend: str, device: str) -> tuple[str, str]:
    """The precision and why; a requested one the backend or CPU lacks falls back with one warning."""
    native = SUPPORTED[(backend, device)]
    supported = supported_precisions(machine, backend, device)
    if cfg.precision == "auto":
        measured = auto_candidates(machine, backend, device)
        if len(measured) > 1 and all(p in machine.speeds for p in measured):
            chosen = min(measured, key=machine.speeds.__getitem__)
            times = ", ".join(f"{p} {machine.speeds[p]:.1f} ms" for p in measured)
            return chosen, f"auto: the fastest measured on this CPU ({times} a frame)"
        candidates = AUTO_PRECISION[(backend, device)]
        chosen = next(p for p in candidates if p in supported and (p != "int8" or machine.cpu_int8))
        why = {"fp16": "CUDA", "int8": "static int8 measured within 1 point of fp32",
               "fp32": "no faster precision measured within 1 point"}[chosen]
        if "int8" in candidates[:candidates.index(chosen)]:
            if not machine.cpu_int8:
                why = "no VNNI or AMX on this CPU, and without them int8 measured no faster than fp32"
            else:
                log.warning("int8 is not offered: %s; using %s", machine.no_calibration, chosen)
                why = "int8 needs calibration frames"
        return chosen, f"auto: {why}"
    precision = cfg.precision
    while precision not in supported:
        fallback = FALLBACK[precision]
        if precision == "bf16" and device == "cpu":
            lacks = "this CPU has no bf16"
        elif precision in native:
            lacks = f"no calibration frames: {machine.no_calibration}"
        else:
            lacks = f"{backend} on {device} lacks it"
        log.warning("model.precision=%s is not available (%s); using %s", precision, lacks, fallback)
        precision = fallback
    if precision == "int8" and device == "cpu" and not machine.cpu_int8:
        log.warning("model.precision=int8 on a CPU without VNNI or AMX: int8 was measured no faster than fp32 on "
                    "such a CPU")
    return precision, "as configured" if precision == cfg.precision else f"fallback from {cfg.precision}"


def pick_workers(cfg: ModelConfig, device: str, cores: int) -> tuple[int, int]:
    """``model.workers`` and ``model.threads``. Workers 0 (auto): on a CPU one inference worker per usable core,
    each of ``threads`` (0: one) thread, since throughput comes from frames in flight, not from threads sharing one
    frame (on 2 cores 2 x 1 was measured fastest for every backend, and it is what OpenVINO's throughput hint picks
    there); on CUDA two frames in flight, whose CPU side needs one thread each. Explicit workers are kept."""
    if cfg.workers:
        return cfg.workers, cfg.threads
    threads = cfg.threads or 1
    if device == "cuda":
        return 2, threads
    return max(1, cores // threads), threads


def resolve_workers(cfg: ModelConfig) -> ModelConfig:
    """`pick_workers` on this machine, for code that sizes itself to the backend's workers (the pipeline's
    inference stage, the benchmark's model-only loop) without the rest of `probe_machine`."""
    if cfg.workers:
        return cfg
    import torch

    workers, threads = pick_workers(cfg, device_kind(cfg, torch.cuda.is_available()), usable_cores())
    return dataclasses.replace(cfg, workers=workers, threads=threads)


def choose_runtime(cfg: ModelConfig, machine: Machine) -> tuple[ModelConfig, str]:
    """``cfg`` with a concrete backend, precision, device and workers, and one line saying what was chosen and
    why."""
    device = device_kind(cfg, machine.cuda)
    backend, backend_why = pick_backend(cfg, machine, device)
    precision, precision_why = pick_precision(cfg, machine, backend, device)
    workers, threads = pick_workers(cfg, device, machine.cores)
    resolved = dataclasses.replace(cfg, backend=backend, precision=precision, device=device, workers=workers,
                                   threads=threads)
    if backend == "onnx" and device == "cuda" and cfg.backend == "auto":
        resolved.onnx = dataclasses.replace(cfg.onnx, providers=list(GPU_PROVIDERS))
    why = backend_why if backend_why == precision_why else f"{backend_why}; {precision_why}"
    layout = f"{plural(workers, 'inference worker')} x {plural(threads, 'thread') if threads else 'default threads'}"
    if not cfg.workers:
        layout += f" (auto: {'CUDA' if device == 'cuda' else plural(machine.cores, 'usable core')})"
    return resolved, f"{backend} {precision} on {device}, {layout} ({why})"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def resolve_runtime(cfg: ModelConfig, machine: Machine | None = None) -> ModelConfig:
    """`choose_runtime` on this machine, logged once per call."""
    resolved, reason = choose_runtime(cfg, machine or probe_machine(cfg))
    log.info("runtime: %s", reason)
    return resolved
