"""The machine a measurement ran on, for every benchmark's printout: CPU model, logical CPUs, flags, load."""
from __future__ import annotations

import os
import platform
import subprocess


def cpu_description() -> dict[str, str]:
    """lscpu's model name and CPU count, every flag, and the SIMD ones that set these models' speed."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}
    flags = fields.get("Flags", "").split()
    simd = [f for f in flags if f.startswith(("avx", "amx", "sse4", "fma")) or "vnni" in f]
    return {"model": fields.get("Model name", platform.processor()), "cpus": fields.get("CPU(s)", ""),
            "flags": " ".join(flags), "simd_flags": " ".join(simd)}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other users of the machine skew every timing."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())
