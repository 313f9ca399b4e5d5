"""On a GPU: every kernel checked natively (bf16 included), timings taken against the framework op."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.requires_gpu


def test_triton_kernels_pass_on_the_gpu_with_bf16(wb) -> None:
    results = wb.kernels.check(backend="triton", dtypes=["float16", "bfloat16"])
    assert results.ok, results.failed
    assert all(r.ok is True and not r.interpreted for r in results)


def test_bench_reports_timings_and_same_run_ratios(wb) -> None:
    results = wb.kernels.bench("softmax", backend="triton", shapes=[(4096, 4096)], dtypes=["float16"])
    [r] = results
    assert r.median_ms > 0 and r.gbps > 0 and r.baseline_ms > 0 and r.speedup_vs_baseline > 0
    assert r.timer.startswith("cuda-events")


def test_triton_gradients_pass_on_the_gpu_with_bf16(wb) -> None:
    results = wb.kernels.check(["softmax", "layer_norm", "rms_norm", "attention"], backend="triton",
                               dtypes=["float16", "bfloat16"], passes=["bwd"])
    assert results.ok, results.failed
    assert results and all(r.ok is True and r.pass_ == "bwd" and not r.interpreted for r in results)


def test_bench_of_the_backward_reports_timings_against_autograd_of_the_framework(wb) -> None:
    [r] = wb.kernels.bench("layer_norm", backend="triton", shapes=[(4096, 4096)], dtypes=["float16"], pass_="bwd")
    assert r.pass_ == "bwd" and r.median_ms > 0 and r.baseline_ms > 0 and r.gbps > 0
    assert r.bytes == (3 * 4096 * 4096 + 3 * 4096) * 2
