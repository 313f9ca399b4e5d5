"""`wb.kernels`: list, get, check and benchmark kernels, and register your own from a notebook.

Built-in kernels come from the top-level `kernels/` folder (see `workbench.kernels.registry`).
Built-in Triton kernels are checked in a separate process (`workbench.kernels._worker`) unless
this process can run Triton itself (a GPU, or TRITON_INTERPRET=1 already set): Triton's
interpreter must be on before triton is imported, and a notebook may have imported it without.
Pallas kernels run here, with `interpret=True` when JAX has no GPU. A kernel you register runs in
this process: on a machine without a GPU, set `os.environ["TRITON_INTERPRET"] = "1"` before
importing triton in the notebook.

Every result is also written to the store (table `kernel_results`) for the dashboard.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import html
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from workbench.errors import InvalidRequest, NotFound, WorkbenchError
from workbench.kernels.harness import (
    KernelResult,
    KernelResults,
    bench_cases,
    cases_for,
    check_cases,
    parse_shape,
)
from workbench.kernels.registry import BACKENDS, PASSES, KernelSpec, builtin_names, builtin_spec

WORKER_TIMEOUT_S = 1800


class KernelList(list[KernelSpec]):
    """The kernels known to this workbench, one entry per (name, backend)."""

    def __repr__(self) -> str:
        return "\n".join(f"{k.name:<14} {k.backend:<7} {k.source:<24} {k.summary}" for k in self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k.name)}</td><td>{k.backend}</td><td>{', '.join(k.dtypes)}</td>"
            f"<td>{html.escape(k.framework_name or '')}</td><td>{html.escape(k.source)}</td><td>{html.escape(k.summary)}</td></tr>"
            for k in self
        )
        return ("<table><tr><th>kernel</th><th>backend</th><th>dtypes</th><th>baseline</th><th>source</th>"
                f"<th>what</th></tr>{rows}</table>")


class KernelService:
    """The kernels noun of a `Workbench`."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self._user: dict[tuple[str, str], KernelSpec] = {}

    # -- the registry ---------------------------------------------------------------------------
    def list(self) -> KernelList:
        specs = [builtin_spec(name, backend) for name in builtin_names() for backend in BACKENDS]
        builtin_keys = {s.key for s in specs}
        specs += [s for k, s in sorted(self._user.items()) if k not in builtin_keys]
        specs = [self._user.get(s.key, s) for s in specs]
        return KernelList(specs)

    def names(self) -> builtins.list[str]:
        return sorted({s.name for s in self.list()})

    def spec(self, name: str, backend: str = "triton") -> KernelSpec:
        if backend not in BACKENDS:
            raise InvalidRequest(f"backend {backend!r} is not known; backends: {', '.join(BACKENDS)}")
        if (name, backend) in self._user:
            return self._user[(name, backend)]
        if name in builtin_names():
            return builtin_spec(name, backend)
        known = ", ".join(f"{s.name}/{s.backend}" for s in self.list())
        raise NotFound(f"no kernel {name!r} for backend {backend!r}; known kernels: {known}")

    def get(self, name: str, backend: str = "triton") -> Callable[..., Any]:
        """The kernel as a callable: on torch tensors for `triton`, on jax arrays for `pallas`.

        Built on first use. The built-in kernels are differentiable: a Triton kernel under
        torch.autograd (a torch.autograd.Function), a Pallas kernel under jax.grad (jax.custom_vjp).
        A kernel registered without a backward raises InvalidRequest when differentiated, saying so.
        On a machine without a GPU a Triton kernel runs only in this process if TRITON_INTERPRET=1
        was set before triton was imported; a Pallas kernel runs in its interpreter.
        """
        spec = self.spec(name, backend)
        kernel = spec.build(_interpreted(backend))
        return kernel if spec.has_backward else _refusing_gradients(spec, kernel)

    def register(
        self,
        name: str,
        backend: str = "triton",
        *,
        like: str | None = None,
        reference: Callable[..., Any] | None = None,
        make_inputs: Callable[..., tuple[Any, ...]] | None = None,
        shapes: Sequence[Sequence[int]] | None = None,
        dtypes: Sequence[str] | None = None,
        flops: Callable[..., int] | None = None,
        bytes_moved: Callable[..., int] | None = None,
        framework: Callable[..., Any] | None = None,
        variants: Sequence[dict[str, Any]] | None = None,
        tolerances: dict[str, tuple[float, float, str]] | None = None,
        summary: str = "",
        differentiable: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register your own kernel; it then gets the same `check` and `bench`.

        `like="softmax"` borrows a built-in operation's reference, inputs, shapes, dtypes, FLOP and
        byte counts and framework baseline; any of them can be given instead (with no `like`,
        `reference` and `make_inputs(shape, rng, **params)` are required). The decorated function
        takes the same inputs as the reference and is returned unchanged. `differentiable=True`
        says it has a backward (a torch.autograd.Function, a jax.custom_vjp): its gradients are
        then checked too; without it `get` returns a callable that refuses to be differentiated.
        """
        if backend not in BACKENDS:
            raise InvalidRequest(f"backend {backend!r} is not known; backends: {', '.join(BACKENDS)}")
        base = builtin_spec(like, backend) if like is not None else None
        if base is None and (reference is None or make_inputs is None):
            raise InvalidRequest(f"registering {name!r}: give like=<built-in kernel> or both reference= and make_inputs=")

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            fields: dict[str, Any] = {"name": name, "backend": backend, "build": lambda interpret: fn,
                                      "source": f"user:{getattr(fn, '__qualname__', name)}", "summary": summary,
                                      "has_backward": differentiable}
            given = {"reference": reference, "make_inputs": make_inputs, "flops": flops, "bytes_moved": bytes_moved,
                     "framework": framework, "tolerances": tolerances}
            fields.update({k: v for k, v in given.items() if v is not None})
            if shapes is not None:
                listed = [tuple(s) for s in shapes]
                fields["check_shapes"] = {"cpu": listed, "gpu": listed}
                fields["bench_shapes"] = {"cpu": listed[-1:], "gpu": listed[-1:]}
            if dtypes is not None:
                fields["dtypes"] = tuple(dtypes)
            if variants is not None:
                fields["variants"] = tuple(variants)
                fields["bench_variants"] = None
            if framework is not None:
                fields["framework_name"] = getattr(framework, "__qualname__", "framework")
            if base is not None:
                fields["summary"] = summary or f"user kernel like {like}: {base.summary}"
                spec = dataclasses.replace(base, **fields)
            else:
                spec = KernelSpec(**fields)
            self._user[(name, backend)] = spec
            return fn

        return decorator

    # -- check and bench ------------------------------------------------------------------------
    def check(
        self,
        name: str | Iterable[str] | None = None,
        backend: str | None = None,
        shapes: Iterable[Sequence[int] | str] | None = None,
        dtypes: Iterable[str] | None = None,
        *,
        passes: Iterable[str] | None = None,
        seed: int | None = None,
        save: bool = True,
    ) -> KernelResults:
        """Check kernels against their references; one result per case, failures included.

        `name` None checks every kernel; `backend` None both backends; `shapes` and `dtypes` None
        the kernel's own (which include non-powers of two and edge sizes); `passes` None the
        forward and, for a kernel with a backward, its gradients against autograd of the reference
        (`("fwd",)` or `("bwd",)` for one of them).
        """
        return self._run("check", name, backend, shapes, dtypes, passes=_passes(passes), seed=seed, save=save)

    def bench(
        self,
        name: str | Iterable[str] | None = None,
        backend: str | None = None,
        shapes: Iterable[Sequence[int] | str] | None = None,
        dtypes: Iterable[str] | None = None,
        *,
        pass_: str = "fwd",
        baseline: bool = True,
        save: bool = True,
    ) -> KernelResults:
        """Time kernels, and the framework's operation in the same run; no timings in an interpreter.

        `pass_="bwd"` times the backward alone (the gradients of every input for one incoming
        gradient, after one forward) against the framework's autograd backward.
        """
        return self._run("bench", name, backend, shapes, dtypes, passes=_passes([pass_]), baseline=baseline, save=save)

    def submit(
        self,
        name: str | Iterable[str] | None = None,
        backend: str | None = None,
        *,
        what: str = "check",
        slice: Any = "cpu",
        shapes: Iterable[Sequence[int] | str] | None = None,
        dtypes: Iterable[str] | None = None,
        passes: Iterable[str] | None = None,
        **job_options: Any,
    ) -> Any:
        """Run `check` or `bench` of built-in kernels as a job on a slice (e.g. the GPU slice you hold).

        Returns the `Job`; its result is the list of results as dicts, also saved as the
        artifact `kernel_results.json`. Kernels registered in this notebook are not sent: the
        job's process has only the built-in ones.
        """
        from workbench.kernels.jobs import run_kernels

        if what not in ("check", "bench"):
            raise InvalidRequest(f"what={what!r}: a kernel job can 'check' or 'bench'")
        names = self._names(name)
        builtin = set(builtin_names())
        user_only = [n for n in names if n not in builtin]
        if user_only:
            raise InvalidRequest(f"kernels registered in this process cannot run as jobs: {', '.join(user_only)}")
        self._backends(backend)
        params = {"what": what, "names": names, "backend": backend, "dtypes": None if dtypes is None else list(dtypes),
                  "passes": _passes(passes),
                  "shapes": None if shapes is None else [list(parse_shape(s) if isinstance(s, str) else s) for s in shapes]}
        job_options.setdefault("name", f"kernels {what} {' '.join(names)}"[:100])
        return self.wb.jobs.submit(run_kernels, slice=slice, params=params, **job_options)

    def _run(self, what: str, name: Any, backend: str | None, shapes: Any, dtypes: Any, *, passes: builtins.list[str] | None = None,
             seed: int | None = None, baseline: bool = True, save: bool = True) -> KernelResults:
        names = self._names(name)
        backends = self._backends(backend)
        shape_list = None if shapes is None else [parse_shape(s) if isinstance(s, str) else tuple(s) for s in shapes]
        dtype_list = None if dtypes is None else list(dtypes)
        specs = [self.spec(n, b) for n in names for b in backends if self._has(n, b)]
        if not specs:
            raise NotFound(f"no kernel among {names} has a {backend} implementation")
        in_worker = [s for s in specs if s.backend == "triton" and s.source.startswith("builtin") and not _triton_here()]
        here = [s for s in specs if s not in in_worker]
        worker = _start_worker(what, [s.name for s in in_worker], shape_list, dtype_list, passes, seed, baseline) if in_worker else None
        by_key: dict[tuple[str, str], builtins.list[KernelResult]] = {}
        for spec in here:
            where = "gpu" if not _interpreted(spec.backend) else "cpu"
            cases = cases_for(spec, where, what=what, shapes=shape_list, dtypes=dtype_list, passes=passes)
            if what == "check":
                by_key[spec.key] = list(check_cases(spec, cases, seed=seed))
            else:
                by_key[spec.key] = list(bench_cases(spec, cases, seed=seed or 0, baseline=baseline))
        if worker is not None:
            for result in _finish_worker(worker, [s.name for s in in_worker], what):
                by_key.setdefault((result.kernel, result.backend), []).append(result)
        results = KernelResults(r for spec in specs for r in by_key.get(spec.key, []))
        if save:
            self._save(results)
        return results

    def _names(self, name: Any) -> builtins.list[str]:
        if name is None:
            return self.names()
        names = [name] if isinstance(name, str) else list(name)
        known = set(self.names())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise NotFound(f"no kernel named {', '.join(map(repr, unknown))}; known kernels: {', '.join(sorted(known))}")
        return names

    def _backends(self, backend: str | None) -> tuple[str, ...]:
        if backend is None:
            return BACKENDS
        if backend not in BACKENDS:
            raise InvalidRequest(f"backend {backend!r} is not known; backends: {', '.join(BACKENDS)}")
        return (backend,)

    def _has(self, name: str, backend: str) -> bool:
        return (name, backend) in self._user or name in builtin_names()

    # -- the store ------------------------------------------------------------------------------
    def _save(self, results: Iterable[KernelResult]) -> None:
        from workbench.store.models.kernels import KernelResultRow

        rows = [
            KernelResultRow(
                kernel=r.kernel, backend=r.backend, what=r.what, dtype=r.dtype,
                shape=(r.shape + "".join(f",{k}={v}" for k, v in r.params.items())
                       + (",pass=bwd" if r.pass_ == "bwd" else ""))[:200],
                device_model=r.device, interpreted=r.interpreted, ok=r.ok, max_abs_err=r.max_abs_err,
                max_rel_err=r.max_rel_err, skipped_reason=(r.error or r.skipped_reason or "")[:2000] or None,
                median_ms=r.median_ms, gbps=r.gbps, tflops=r.tflops, baseline_ms=r.baseline_ms, owner=self.wb.user,
            )
            for r in results
        ]
        if not rows:
            return
        with self.wb.store.session() as session:
            session.add_all(rows)

    def results(self, kernel: str | None = None, what: str | None = None, limit: int = 200) -> builtins.list[dict[str, Any]]:
        """Stored results, newest first."""
        from sqlalchemy import select

        from workbench.store.models.kernels import KernelResultRow

        query = select(KernelResultRow).order_by(KernelResultRow.id.desc()).limit(limit)
        if kernel is not None:
            query = query.where(KernelResultRow.kernel == kernel)
        if what is not None:
            query = query.where(KernelResultRow.what == what)
        with self.wb.store.session() as session:
            rows = session.scalars(query).all()
            return [{c.name: getattr(row, c.name) for c in KernelResultRow.__table__.columns} for row in rows]

    # -- the roofline ---------------------------------------------------------------------------
    def roofline(self, results: Iterable[KernelResult] | None = None, *, device: str = "H100-80GB",
                 dtype: str = "float16", ax: Any = None) -> Any:
        """A matplotlib roofline of `device` from the catalog, with the kernels placed on it."""
        from workbench.kernels.roofline import plot_roofline

        return plot_roofline(self, results, device=device, dtype=dtype, ax=ax)

    def close(self) -> None:
        self._user.clear()

    def __repr__(self) -> str:
        return f"<KernelService {len(self.list())} kernels ({len(self._user)} registered here)>"


# -- where the kernels can run ---------------------------------------------------------------------
def _cuda_available() -> bool:
    """Whether torch can use a GPU here. Asks NVML first, so a machine without an NVIDIA driver
    never imports torch (about 180 MB) just to learn that it has no CUDA."""
    if "torch" not in sys.modules:
        from workbench.inventory.discovery import load_nvml

        nvml = load_nvml()
        try:
            if nvml is None or nvml.nvmlDeviceGetCount() == 0:
                return False
        except Exception:  # a driver that does not answer: no usable GPU
            return False
        try:
            import torch
        except ImportError:
            return False
    import torch

    return bool(torch.cuda.is_available())


def _triton_here() -> bool:
    """Whether this process can run Triton kernels: a GPU, or the interpreter switched on."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return _cuda_available()


def _interpreted(backend: str) -> bool:
    if backend == "triton":
        return not _cuda_available()
    import jax

    return jax.default_backend() != "gpu"


def _start_worker(what: str, names: list[str], shapes: Any, dtypes: Any, passes: list[str] | None, seed: int | None,
                  baseline: bool) -> subprocess.Popen[str]:
    request = {"what": what, "kernels": names, "shapes": None if shapes is None else [list(s) for s in shapes],
               "dtypes": dtypes, "passes": passes, "seed": seed, "baseline": baseline}
    env = dict(os.environ)
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.kernels._worker", json.dumps(request)], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )


def _finish_worker(process: subprocess.Popen[str], names: list[str], what: str) -> list[KernelResult]:
    from workbench.kernels._worker import MARKER

    try:
        stdout, stderr = process.communicate(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise WorkbenchError(f"the Triton {what} of {', '.join(names)} took over {WORKER_TIMEOUT_S} s and was stopped") from None
    if process.returncode != 0 or MARKER not in stdout:
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        raise WorkbenchError(f"the Triton {what} process for {', '.join(names)} failed (exit {process.returncode}): {tail}")
    payload = json.loads(stdout.split(MARKER, 1)[1])
    return [KernelResult.from_json(item) for item in payload]


def _passes(passes: Iterable[str] | None) -> list[str] | None:
    if passes is None:
        return None
    chosen = list(passes)
    unknown = [p for p in chosen if p not in PASSES]
    if unknown:
        raise InvalidRequest(f"pass {', '.join(map(repr, unknown))} is not known; passes: {', '.join(PASSES)}")
    return chosen


def _refusing_gradients(spec: KernelSpec, kernel: Callable[..., Any]) -> Callable[..., Any]:
    """`kernel`, which raises InvalidRequest (saying it has no backward) when differentiated."""
    if spec.backend == "triton":

        def guarded(*args: Any, **kwargs: Any) -> Any:
            import torch

            if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
                raise InvalidRequest(spec.no_backward())
            return kernel(*args, **kwargs)

    else:

        def guarded(*args: Any, **kwargs: Any) -> Any:
            import jax

            @jax.custom_vjp
            def call(*arrays: Any) -> Any:
                return kernel(*arrays, **kwargs)

            def refuse(*arrays: Any) -> Any:
                raise InvalidRequest(spec.no_backward())

            def never(saved: Any, grad: Any) -> tuple[Any, ...]:
                return ()  # never called: the forward (`refuse`) raises first

            call.defvjp(refuse, never)
            return call(*args)

    return functools.update_wrapper(guarded, kernel)
