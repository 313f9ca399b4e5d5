"""What a slice request means: parse `"cpu:2"`, `"1g.10gb"`, `0.25`, `"10GiB"`, `"gpu:2"`.

Parsing is pure and knows nothing about the fleet; `SliceService` then checks the parsed request
against the devices that exist, so an error can say what this fleet offers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from workbench.errors import InvalidRequest

MIG_PROFILE_RE = re.compile(r"^(\d)g\.(\d+)gb(\+me)?$")
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
SPEC_HELP = (
    'valid specs: "cpu" or "cpu:N" (N cores), a MIG profile such as "1g.10gb", a fraction of one GPU '
    'such as 0.25, GPU memory such as "10GiB", "gpu" or "gpu:N" (whole GPUs on one node)'
)


@dataclass(frozen=True)
class SliceSpec:
    """A parsed request. `kind` is cpu | mig | fraction | whole.

    For fractions, either `gpu_milli` (a share in thousandths) or `gpu_memory_bytes` (converted to a
    share of the chosen GPU at placement) is set.
    """

    kind: str
    text: str
    cpu_milli: int = 0
    gpu_count: int = 0
    gpu_milli: int = 0
    gpu_memory_bytes: int | None = None
    profile: str | None = None
    models: tuple[str, ...] = field(default_factory=tuple)


def parse_memory(text: str) -> int | None:
    """`"10GiB"` -> 10737418240; None when `text` is not a memory size."""
    m = _MEMORY_RE.match(text)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_spec(spec: str | float) -> SliceSpec:
    """Turn what a user typed into a `SliceSpec`, or raise `InvalidRequest` saying what is valid."""
    if isinstance(spec, bool):
        raise InvalidRequest(f"slice spec {spec!r} is not valid; {SPEC_HELP}")
    if isinstance(spec, (int, float)):
        return _fraction(float(spec), repr(spec))
    text = str(spec).strip()
    low = text.lower()
    if not low:
        raise InvalidRequest(f"empty slice spec; {SPEC_HELP}")
    if low == "cpu" or low.startswith("cpu:"):
        return _cpu(low)
    if low in ("gpu", "whole") or low.startswith("gpu:"):
        return _whole(low)
    if MIG_PROFILE_RE.match(low):
        return SliceSpec(kind="mig", text=low, profile=low)
    memory = parse_memory(low)
    if memory is not None:
        if memory <= 0:
            raise InvalidRequest(f"GPU memory {text!r} must be more than 0 bytes")
        return SliceSpec(kind="fraction", text=text, gpu_memory_bytes=memory)
    try:
        value = float(low)
    except ValueError:
        raise InvalidRequest(f"slice spec {text!r} is not valid; {SPEC_HELP}") from None
    return _fraction(value, text)


def _cpu(low: str) -> SliceSpec:
    raw = low.partition(":")[2] or "1"
    try:
        cores = float(raw)
    except ValueError:
        raise InvalidRequest(f"CPU slice {low!r}: {raw!r} is not a number of cores; e.g. cpu:2 or cpu:0.5") from None
    if not math.isfinite(cores) or cores <= 0:
        raise InvalidRequest(f"CPU slice {low!r}: the number of cores must be more than 0")
    return SliceSpec(kind="cpu", text=low, cpu_milli=max(1, round(cores * 1000)))


def _whole(low: str) -> SliceSpec:
    raw = low.partition(":")[2] or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidRequest(f"whole-GPU slice {low!r}: {raw!r} must be a whole number of GPUs ≥ 1, e.g. gpu:2")
    return SliceSpec(kind="whole", text=low, gpu_count=int(raw), gpu_milli=1000)


def _fraction(value: float, text: str) -> SliceSpec:
    if not math.isfinite(value) or value <= 0 or value > 1:
        raise InvalidRequest(
            f"GPU fraction {text} is not valid: a fraction must be more than 0 and at most 1 "
            "(e.g. 0.25); for several GPUs ask for gpu:N"
        )
    if value == 1:
        return SliceSpec(kind="whole", text=text, gpu_count=1, gpu_milli=1000)
    milli = math.ceil(value * 1000 - 1e-9)
    return SliceSpec(kind="fraction", text=text, gpu_milli=max(1, milli))
