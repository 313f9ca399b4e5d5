"""The registry: kernels found by path, loaded under a private name, nothing heavy imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.errors import InvalidRequest, NotFound
from workbench.kernels.registry import (
    builtin_names,
    builtin_spec,
    kernels_dir,
    load_module,
)

OPS = ["attention", "layer_norm", "matmul", "rms_norm", "softmax"]


def test_builtin_kernels_are_found_in_the_top_level_folder() -> None:
    assert kernels_dir().name in ("kernels", "_kernels")
    assert builtin_names() == OPS


def test_modules_load_under_a_private_name_never_as_kernels() -> None:
    module = load_module("softmax")
    assert module.__name__ == "workbench._kernels.softmax"
    assert "kernels" not in sys.modules and "kernels.softmax" not in sys.modules


def test_listing_imports_neither_triton_nor_jax(tmp_path) -> None:
    code = (
        "import sys\n"
        "from workbench import Workbench\n"
        f"wb = Workbench(home={str(tmp_path)!r})\n"
        "names = sorted({k.name for k in wb.kernels.list()})\n"
        "assert names == " + repr(OPS) + ", names\n"
        "heavy = [m for m in ('triton', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("name", OPS)
def test_each_kernel_declares_shapes_dtypes_and_counts(name: str) -> None:
    for backend in ("triton", "pallas"):
        spec = builtin_spec(name, backend)
        assert set(spec.dtypes) == {"float32", "float16", "bfloat16"}
        cpu_shapes = spec.check_shapes["cpu"]
        assert any(d == 1 for s in cpu_shapes for d in s), "an edge size of 1"
        assert any(d > 1 and d & (d - 1) for s in cpu_shapes for d in s), "a non-power of two"
        shape = spec.bench_shapes["gpu"][0]
        params = dict((spec.bench_variants or spec.variants)[0])
        assert spec.flops(shape, **params) > 0
        assert spec.bytes_moved(shape, 2, **params) > 0
        assert spec.check_shape(shape, **params) is None


def test_counts_match_the_textbook_formulas() -> None:
    assert builtin_spec("matmul", "triton").flops((4096, 4096, 4096)) == 2 * 4096**3
    attention = builtin_spec("attention", "triton")
    full = attention.flops((4, 32, 4096, 128), causal=False)
    assert full == 4 * 4 * 32 * 4096 * 4096 * 128
    assert attention.flops((4, 32, 4096, 128), causal=True) == full // 2
    assert builtin_spec("softmax", "triton").bytes_moved((8192, 8192), 2) == 2 * 8192 * 8192 * 2


def test_unsupported_shapes_say_what_is_wrong() -> None:
    assert "expected a shape (rows, cols), got 3-D" in builtin_spec("softmax", "triton").check_shape((2, 3, 4))
    assert "head_dim 96" in builtin_spec("attention", "pallas").check_shape((1, 1, 8, 96))
    assert "exceed" in builtin_spec("rms_norm", "triton").check_shape((2, 40000))


def test_unknown_names_and_backends(wb) -> None:
    with pytest.raises(NotFound, match="known kernels"):
        wb.kernels.spec("nope", "triton")
    with pytest.raises(InvalidRequest, match="backends: triton, pallas"):
        wb.kernels.spec("softmax", "cuda")
    with pytest.raises(NotFound, match="no kernel named 'nope'"):
        wb.kernels.check("nope")
