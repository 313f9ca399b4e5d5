"""A small character-level transformer language model trained with the workbench's kernels.

Its attention (causal), layer norms, final RMS norm and output softmax come from the kernel
registry (`wb.kernels`), chosen by a flag: `--kernels reference` (the registry's PyTorch or
jax.numpy references) or `--kernels triton` / `--kernels pallas` (the kernels, differentiated
through their own backward passes). The text is the workbench's own Python source, read at run
time, so nothing is downloaded. Same seed, same initial weights, same batches: the two loss curves
agree to rounding, which `--compare` checks.

    python examples/kernels_lm.py --kernels triton --steps 300          # on a GPU
    TRITON_INTERPRET=1 python examples/kernels_lm.py --compare --steps 3 --small   # CPU: Triton's interpreter
    python examples/kernels_lm.py --framework jax --kernels pallas --compare --steps 3 --small

Run as a workbench job, `workbench.log` records the loss per step (and does nothing outside one).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import workbench

# The loss curves of the kernels and of the reference, fp32, agree to this relative difference:
# the kernels sum in another order (blockwise online softmax, two-stage weight gradients), so
# after a few Adam steps the weights differ by a few fp32 roundings.
LOSS_RTOL = 1e-4


@dataclass(frozen=True)
class Config:
    layers: int = 2
    d_model: int = 128
    heads: int = 4  # head_dim = d_model // heads, one of the attention kernel's 16/32/64/128
    seq: int = 128
    batch: int = 16
    steps: int = 200
    learning_rate: float = 3e-3
    seed: int = 0
    max_chars: int = 400_000
    dtype: str = "float32"  # of the weights and activations (PyTorch); bfloat16 for GPU timings

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


SMALL = Config(layers=2, d_model=32, heads=2, seq=32, batch=4, max_chars=50_000)


def corpus(max_chars: int) -> tuple[np.ndarray, list[str]]:
    """The workbench's own source files, concatenated in path order: (token ids, vocabulary)."""
    root = Path(workbench.__file__).resolve().parent
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py")))[:max_chars]
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text)), vocab


def batches(data: np.ndarray, cfg: Config):  # type: ignore[no-untyped-def]
    """(inputs, targets) of cfg.batch windows of cfg.seed-determined random positions, forever."""
    rng = np.random.default_rng(cfg.seed)
    while True:
        starts = rng.integers(0, len(data) - cfg.seq - 1, cfg.batch)
        x = np.stack([data[s:s + cfg.seq] for s in starts])
        y = np.stack([data[s + 1:s + cfg.seq + 1] for s in starts])
        yield x, y


def registry_ops(wb: Any, backend: str, use_kernels: bool) -> dict[str, Any]:
    """softmax, layer_norm, rms_norm and attention: the kernels of `backend`, or their references."""
    names = ("softmax", "layer_norm", "rms_norm", "attention")
    if use_kernels:
        return {n: wb.kernels.get(n, backend) for n in names}
    return {n: wb.kernels.spec(n, backend).reference for n in names}


# -- PyTorch ------------------------------------------------------------------------------------
def train_torch(cfg: Config, use_kernels: bool, wb: Any, step_seconds: list[float] | None = None) -> list[float]:
    """Train the PyTorch model; returns the loss of every step (and appends each step's seconds)."""
    import torch

    ops = registry_ops(wb, "triton", use_kernels)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, cfg.dtype)
    data, vocab = corpus(cfg.max_chars)
    torch.manual_seed(cfg.seed)
    d, v = cfg.d_model, len(vocab)

    def linear(n_in: int, n_out: int) -> torch.nn.Linear:
        return torch.nn.Linear(n_in, n_out, device=device, dtype=dtype)

    blocks = torch.nn.ModuleList([
        torch.nn.ModuleDict({"qkv": linear(d, 3 * d), "proj": linear(d, d), "fc1": linear(d, 4 * d),
                             "fc2": linear(4 * d, d)}) for _ in range(cfg.layers)])
    norms = torch.nn.ParameterList(
        [torch.nn.Parameter((torch.ones if i % 2 == 0 else torch.zeros)(d, device=device, dtype=dtype))
         for _ in range(cfg.layers) for i in range(4)])  # (w, b) of the two layer norms of each block
    embed = torch.nn.Embedding(v, d, device=device, dtype=dtype)
    final_norm = torch.nn.Parameter(torch.ones(d, device=device, dtype=dtype))
    head = linear(d, v)
    params = [*blocks.parameters(), *norms, *embed.parameters(), final_norm, *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, t = x.shape
        h = embed(x)
        for i, block in enumerate(blocks):
            w1, b1, w2, b2 = norms[4 * i:4 * i + 4]
            a = ops["layer_norm"](h.reshape(b * t, d), w1, b1).reshape(b, t, d)
            q, k, v_ = block["qkv"](a).reshape(b, t, 3, cfg.heads, cfg.head_dim).permute(2, 0, 3, 1, 4)
            a = ops["attention"](q, k, v_, causal=True).transpose(1, 2).reshape(b, t, d)
            h = h + block["proj"](a)
            a = ops["layer_norm"](h.reshape(b * t, d), w2, b2)
            h = h + block["fc2"](torch.nn.functional.gelu(block["fc1"](a))).reshape(b, t, d)
        logits = head(ops["rms_norm"](h.reshape(b * t, d), final_norm))
        p = ops["softmax"](logits)
        return -torch.log(p[torch.arange(b * t, device=device), y.reshape(-1)].float() + 1e-30).mean()

    losses = []
    for step, (x, y) in zip(range(cfg.steps), batches(data, cfg)):
        started = time.perf_counter()
        loss = loss_of(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # waits for the GPU: the step's time is all of its work
        if step_seconds is not None:
            step_seconds.append(time.perf_counter() - started)
        workbench.log(step=step, loss=losses[-1])
    return losses


# -- JAX ----------------------------------------------------------------------------------------
def train_jax(cfg: Config, use_kernels: bool, wb: Any, step_seconds: list[float] | None = None) -> list[float]:
    """Train the JAX model (optax Adam); returns the loss of every step."""
    import jax
    import jax.numpy as jnp
    import optax

    ops = registry_ops(wb, "pallas", use_kernels)
    data, vocab = corpus(cfg.max_chars)
    d, v = cfg.d_model, len(vocab)
    rng = np.random.default_rng(cfg.seed)

    def dense(n_in: int, n_out: int) -> dict[str, jax.Array]:
        bound = 1.0 / math.sqrt(n_in)  # torch.nn.Linear's initialisation
        return {"w": jnp.asarray(rng.uniform(-bound, bound, (n_in, n_out)), jnp.float32),
                "b": jnp.asarray(rng.uniform(-bound, bound, n_out), jnp.float32)}

    params = {
        "embed": jnp.asarray(rng.standard_normal((v, d)), jnp.float32),
        "blocks": [{"qkv": dense(d, 3 * d), "proj": dense(d, d), "fc1": dense(d, 4 * d), "fc2": dense(4 * d, d),
                    "ln1": {"w": jnp.ones(d), "b": jnp.zeros(d)}, "ln2": {"w": jnp.ones(d), "b": jnp.zeros(d)}}
                   for _ in range(cfg.layers)],
        "final_norm": jnp.ones(d),
        "head": dense(d, v),
    }

    def apply(layer: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        return x @ layer["w"] + layer["b"]

    def loss_of(p: dict[str, Any], x: jax.Array, y: jax.Array) -> jax.Array:
        b, t = x.shape
        h = p["embed"][x]
        for block in p["blocks"]:
            a = ops["layer_norm"](h.reshape(b * t, d), block["ln1"]["w"], block["ln1"]["b"]).reshape(b, t, d)
            q, k, v_ = apply(block["qkv"], a).reshape(b, t, 3, cfg.heads, cfg.head_dim).transpose(2, 0, 3, 1, 4)
            a = ops["attention"](q, k, v_, causal=True).transpose(0, 2, 1, 3).reshape(b, t, d)
            h = h + apply(block["proj"], a)
            a = ops["layer_norm"](h.reshape(b * t, d), block["ln2"]["w"], block["ln2"]["b"])
            h = h + apply(block["fc2"], jax.nn.gelu(apply(block["fc1"], a), approximate=False)).reshape(b, t, d)
        probs = ops["softmax"](apply(p["head"], ops["rms_norm"](h.reshape(b * t, d), p["final_norm"])))
        return -jnp.log(probs[jnp.arange(b * t), y.reshape(-1)] + 1e-30).mean()

    optimizer = optax.adam(cfg.learning_rate)

    @jax.jit
    def step(p, state, x, y):  # type: ignore[no-untyped-def]
        loss, grads = jax.value_and_grad(loss_of)(p, x, y)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    state = optimizer.init(params)
    losses = []
    for i, (x, y) in zip(range(cfg.steps), batches(data, cfg)):
        started = time.perf_counter()
        params, state, loss = step(params, state, jnp.asarray(x), jnp.asarray(y))
        losses.append(float(loss))
        if step_seconds is not None:
            step_seconds.append(time.perf_counter() - started)
        workbench.log(step=i, loss=losses[-1])
    return losses


def train(cfg: Config, framework: str = "torch", use_kernels: bool = True, wb: Any = None,
          step_seconds: list[float] | None = None) -> list[float]:
    """The loss of every step of training with the kernels (or their references)."""
    if wb is None:
        from workbench import Workbench

        wb = Workbench()
    return (train_torch if framework == "torch" else train_jax)(cfg, use_kernels, wb, step_seconds)


def compare(cfg: Config, framework: str = "torch", wb: Any = None) -> dict[str, Any]:
    """Train with the references, then with the kernels, from the same start; the two loss curves."""
    timings = {}
    curves = {}
    for label, use_kernels in (("reference", False), ("kernels", True)):
        started = time.perf_counter()
        curves[label] = train(cfg, framework, use_kernels, wb)
        timings[label] = time.perf_counter() - started
    ref, got = np.array(curves["reference"]), np.array(curves["kernels"])
    max_rel = float(np.max(np.abs(got - ref) / np.abs(ref)))
    return {"framework": framework, "config": asdict(cfg), "reference": curves["reference"],
            "kernels": curves["kernels"], "max_rel_diff": max_rel, "rtol": LOSS_RTOL, "ok": max_rel <= LOSS_RTOL,
            "seconds": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "jax"), default="torch")
    parser.add_argument("--kernels", choices=("reference", "triton", "pallas"), default=None,
                        help="reference, or the framework's kernels (triton for torch, pallas for jax)")
    parser.add_argument("--compare", action="store_true", help="train with both and compare the loss curves")
    parser.add_argument("--small", action="store_true", help="a tiny model, for interpreters")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cfg = SMALL if args.small else Config()
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.compare:
        report = compare(cfg, args.framework)
        print(json.dumps(report) if args.json else
              f"{args.framework}: reference {report['reference']}\n{'':>{len(args.framework)}}  kernels   "
              f"{report['kernels']}\nmax relative difference {report['max_rel_diff']:.2e} (tolerance {LOSS_RTOL:g})")
        if not report["ok"]:
            raise SystemExit(1)
        return
    expected = "triton" if args.framework == "torch" else "pallas"
    if args.kernels not in (None, "reference", expected):
        raise SystemExit(f"--kernels {args.kernels} does not go with --framework {args.framework}: use {expected}")
    losses = train(cfg, args.framework, args.kernels != "reference")
    print(json.dumps({"losses": losses}) if args.json else f"loss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps")


if __name__ == "__main__":
    main()
