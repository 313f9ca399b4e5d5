"""Execute notebooks and report the peak memory of the kernel's process tree.

    python scripts/notebook_memory.py notebooks/00_tour.ipynb [--limit-gb 1.5] [--timeout 600]

Prints one JSON object per notebook: its path, seconds, the peak resident memory of the kernel and
every process it started (Dask workers, job processes), summed over one sample, and whether every
cell ran. Exits 1 if a cell fails or the peak passes `--limit-gb`.

Why measure instead of limiting: `RLIMIT_AS` caps *address space*, and JAX, PyTorch and the CUDA
libraries reserve far more address space than they ever touch, so a 1.5 GB `RLIMIT_AS` kills a
kernel that uses 400 MB. Resident memory (RSS) is what mybinder's 2 GB limit counts. Summing RSS
over processes counts shared pages once per process, so the figure errs on the high side.

The sampler watches every descendant of this process: run it as its own process (the test does),
so nothing else is counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

SAMPLE_EVERY_S = 0.02


def _tree_rss_bytes(root: psutil.Process) -> int:
    total = 0
    for proc in root.children(recursive=True):
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def measure(
    path: Path, timeout_s: int = 600, kernel_name: str = "python3", cwd: Path | None = None, save: Path | None = None
) -> dict[str, object]:
    """Execute `path` in a fresh kernel (cwd = its folder unless given) and return the figures.

    `save` writes the executed notebook there (the outputs of this run)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd or path.parent)}}
    )
    me = psutil.Process()
    peak = 0
    done = threading.Event()
    error: list[str] = []

    def run() -> None:
        try:
            client.execute()
        except CellExecutionError as exc:
            error.append(str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
        except Exception as exc:  # the kernel died (for example killed for memory)
            error.append(f"{type(exc).__name__}: {exc}")
        finally:
            done.set()

    started = time.perf_counter()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while not done.wait(SAMPLE_EVERY_S):
        peak = max(peak, _tree_rss_bytes(me))
    worker.join()
    if save is not None:
        nbformat.write(nb, save)
    return {
        "notebook": str(path),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_bytes": peak,
        "peak_rss_gb": round(peak / 1e9, 3),
        "ok": not error,
        "error": error[0] if error else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--limit-gb", type=float, default=None, help="fail when the peak passes this (GB, 10^9 bytes)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--cwd", type=Path, default=None, help="the kernel's working folder (default: the notebook's)")
    parser.add_argument("--save", action="store_true", help="write each executed notebook back, with this run's outputs")
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks:
        result = measure(path, args.timeout, args.kernel, args.cwd, path if args.save else None)
        print(json.dumps(result), flush=True)
        over = args.limit_gb is not None and result["peak_rss_bytes"] > args.limit_gb * 1e9
        failed = failed or not result["ok"] or over
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
