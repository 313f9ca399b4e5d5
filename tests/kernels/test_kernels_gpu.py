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
