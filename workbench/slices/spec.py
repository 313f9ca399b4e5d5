"""What a slice request means: parse `"cpu:2"`, `"1g.10gb"`, `0.25`, `"10GiB"`, `"gpu:2"`.

Parsing is pure and knows nothing about the fleet; `SliceService` then checks the parsed request
against the devices that exist, so an error can say what this fleet offers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

from workbench.errors import InvalidRequest
from workbench.units import NUMBER, echo, format_size_bytes, parse_size_bytes, strict_text

MIG_PROFILE_RE = re.compile(r"^([0-9])g\.([0-9]{1,4})gb(\+me)?$", re.ASCII)
_AMOUNT_RE = re.compile(rf"{NUMBER}", re.ASCII)
MIN_CPU_MILLI = 100  # a tenth of a core: less is not worth a lease, and cpu:0.0000001 is a typo
MIN_GPU_MILLI = 10  # a hundredth of a GPU
MAX_CPU_CORES = 100_000
MAX_GPU_COUNT = 10_000
SPEC_HELP = (
    'valid specs: "cpu" or "cpu:N" (N cores, at least 0.1), a MIG profile such as "1g.10gb", a fraction of one GPU '
    'such as 0.25 (at least 0.01), GPU memory such as "10GiB", "gpu" or "gpu:N" (whole GPUs on one node)'
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


def parse_spec(spec: str | float) -> SliceSpec:
    """Turn what a user typed into a `SliceSpec`, or raise `InvalidRequest` saying what is valid.

    Numbers are ASCII digits with an optional decimal part; grants are rounded up to thousandths
    (milli-cores, thousandths of a GPU) and must reach `MIN_CPU_MILLI` or `MIN_GPU_MILLI`.
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise InvalidRequest(f"slice spec {echo(spec)} is not valid; {SPEC_HELP}")
    if isinstance(spec, int):
        digits = str(spec)
        return _fraction(Decimal(spec), digits if len(digits) <= 20 else f"{digits[:19]}… ({len(digits):,} digits)")
    if isinstance(spec, float):
        if not math.isfinite(spec):
            raise InvalidRequest(f"GPU fraction {spec!r} is not a finite number; {SPEC_HELP}")
        return _fraction(Decimal(repr(spec)), repr(spec))
    text = strict_text(spec, "slice spec", SPEC_HELP)
    low = text.lower()
    if low == "cpu" or low.startswith("cpu:"):
        return _cpu(low)
    if low in ("gpu", "whole") or low.startswith("gpu:"):
        return _whole(low)
    if MIG_PROFILE_RE.match(low):
        return SliceSpec(kind="mig", text=low, profile=low)
    if _AMOUNT_RE.fullmatch(low.removeprefix("-")):
        return _fraction(Decimal(low), text)
    if low[-1:] == "b":
        return SliceSpec(kind="fraction", text=text, gpu_memory_bytes=parse_size_bytes(text, "GPU memory"))
    raise InvalidRequest(f"slice spec {echo(text)} is not valid; {SPEC_HELP}")


def canonical(spec: SliceSpec) -> str:
    """The one text that parses to `spec`'s grant: `cpu:0.5`, `1g.10gb`, `0.25`, `10737418240B`, `gpu:2`."""
    if spec.kind == "cpu":
        return f"cpu:{_thousandths(spec.cpu_milli)}"
    if spec.kind == "mig":
        return str(spec.profile)
    if spec.kind == "whole":
        return f"gpu:{spec.gpu_count}"
    if spec.gpu_memory_bytes is not None:
        return format_size_bytes(spec.gpu_memory_bytes)
    return _thousandths(spec.gpu_milli)


def _thousandths(milli: int) -> str:
    return f"{milli // 1000}.{milli % 1000:03d}".rstrip("0").rstrip(".")


def _milli(amount: Decimal) -> int:
    """Thousandths, rounded up: what a grant of `amount` holds."""
    return int((amount * 1000).to_integral_value(rounding="ROUND_CEILING"))


def _cpu(low: str) -> SliceSpec:
    raw = low.partition(":")[2] if ":" in low else "1"
    if not _AMOUNT_RE.fullmatch(raw):
        raise InvalidRequest(f"CPU slice {echo(low)}: {echo(raw)} is not a number of cores in ASCII digits; e.g. cpu:2 or cpu:0.5")
    cores = Decimal(raw)
    if cores > MAX_CPU_CORES:
        raise InvalidRequest(f"CPU slice {echo(low)}: {raw} cores is more than any node has (at most {MAX_CPU_CORES:,})")
    milli = _milli(cores)
    if cores * 1000 < MIN_CPU_MILLI:
        raise InvalidRequest(f"CPU slice {echo(low)}: the number of cores must be more than 0 and at least 0.1 (the smallest grant)")
    return SliceSpec(kind="cpu", text=low, cpu_milli=milli)


def _whole(low: str) -> SliceSpec:
    raw = low.partition(":")[2] if ":" in low else "1"
    if not re.fullmatch(r"[0-9]{1,6}", raw, re.ASCII) or not 1 <= int(raw) <= MAX_GPU_COUNT:
        raise InvalidRequest(
            f"whole-GPU slice {echo(low)}: {echo(raw)} must be a whole number of GPUs from 1 to {MAX_GPU_COUNT:,}, e.g. gpu:2"
        )
    return SliceSpec(kind="whole", text=low, gpu_count=int(raw), gpu_milli=1000)


def _fraction(value: Decimal, text: str) -> SliceSpec:
    if value <= 0 or value > 1:
        raise InvalidRequest(
            f"GPU fraction {text} is not valid: a fraction must be more than 0 and at most 1 "
            "(e.g. 0.25); for several GPUs ask for gpu:N"
        )
    milli = _milli(value)
    if value * 1000 < MIN_GPU_MILLI:
        raise InvalidRequest(f"GPU fraction {text} is below the smallest grant, 0.01 of a GPU")
    if milli >= 1000:  # 1, or so close to it that the grant rounds up to a whole GPU
        return SliceSpec(kind="whole", text=text, gpu_count=1, gpu_milli=1000)
    return SliceSpec(kind="fraction", text=text, gpu_milli=milli)
