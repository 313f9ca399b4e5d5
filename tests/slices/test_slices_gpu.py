"""Slices on a real NVIDIA GPU: the environment a lease hands its processes is what confines them.

Skipped without a GPU. Each check runs the framework in a fresh process started with the lease's
environment, as the jobs worker does, because the cap must be in place before CUDA is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.requires_gpu

TORCH_CAP = """
import os, torch
frac = float(os.environ["WORKBENCH_SLICE_MEMORY_FRACTION"])
torch.cuda.set_per_process_memory_fraction(frac)
total = torch.cuda.get_device_properties(0).total_memory
assert torch.cuda.device_count() == 1, torch.cuda.device_count()
x = torch.empty(int(total * (frac - 0.05)) // 4, dtype=torch.float32, device="cuda")
del x
try:
    torch.empty(int(total * (frac + 0.05)) // 4, dtype=torch.float32, device="cuda")
except torch.OutOfMemoryError:
    print("capped")
"""


def _run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_gpu_leases_carry_uuid_and_caps(wb: Any) -> None:
    pytest.importorskip("torch")
    inv = wb.devices()
    assert inv.source == "nvml"
    gpu = next(d for d in inv.devices if d.kind == "gpu" and not d.mig)
    frac = wb.slices.request(0.25, models=[gpu.model])
    assert frac.env["CUDA_VISIBLE_DEVICES"] in {d.uuid for d in inv.devices if d.kind == "gpu"}
    assert frac.env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.250"
    assert "capped" in _run(TORCH_CAP, frac.env)
    frac.release()
    whole = wb.slices.request("gpu", models=[gpu.model])
    assert whole.env["CUDA_VISIBLE_DEVICES"] in {d.uuid for d in inv.devices if d.kind == "gpu"}
    assert "1" in _run("import torch; print(torch.cuda.device_count())", whole.env)
    whole.release()


def test_nvml_probe_tells_busy_from_idle(wb: Any) -> None:
    pytest.importorskip("torch")
    from workbench.slices.probes import DeviceUse

    probe = DeviceUse(wb.devices)
    lease = wb.slices.request("gpu")
    assert probe(wb.slices, lease)["busy"] is False
    busy = subprocess.Popen(
        [sys.executable, "-c", "import torch,time\na=torch.randn(8192,8192,device='cuda')\nt=time.time()\n"
         "while time.time()-t<20: a=(a@a); a=a/a.norm()"],
        env={**os.environ, **lease.env},
    )
    try:
        import time

        deadline = time.monotonic() + 15
        while not probe(wb.slices, lease)["busy"]:
            assert time.monotonic() < deadline, "NVML never showed the GPU busy"
            time.sleep(0.5)
    finally:
        busy.kill()
        busy.wait()
