"""A small JAX + optax MLP on scikit-learn's digits (8x8 images, 10 classes), on CPU in seconds.

Run it as a workbench job (`workbench jobs run examples/jax_mlp_digits.py --framework jax --wait`)
or by hand (`python examples/jax_mlp_digits.py`); `workbench.log` records the loss per step in a
job and does nothing outside one. Prints the test accuracy and saves the parameters as an artifact.
"""

from __future__ import annotations

import argparse
import time

import workbench


def load_digits_split(seed: int = 0):  # type: ignore[no-untyped-def]
    """The digits data set that ships with scikit-learn (offline), scaled to [0, 1], 75/25 split."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def train(epochs: int = 30, batch_size: int = 64, hidden: int = 128, learning_rate: float = 3e-3, seed: int = 0) -> float:
    """Train; returns the test accuracy."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    x_train, x_test, y_train, y_test = load_digits_split(seed)
    key = jax.random.PRNGKey(seed)
    k1, k2 = jax.random.split(key)
    params = {
        "w1": jax.random.normal(k1, (64, hidden)) * jnp.sqrt(2.0 / 64),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden, 10)) * jnp.sqrt(2.0 / hidden),
        "b2": jnp.zeros(10),
    }

    def logits_fn(p, x):  # type: ignore[no-untyped-def]
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        return h @ p["w2"] + p["b2"]

    def loss_fn(p, x, y):  # type: ignore[no-untyped-def]
        return optax.softmax_cross_entropy_with_integer_labels(logits_fn(p, x), y).mean()

    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(p, s, x, y):  # type: ignore[no-untyped-def]
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    rng = np.random.default_rng(seed)
    n = len(x_train)
    global_step = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx])
            workbench.log(step=global_step, loss=loss, epoch=epoch, samples=batch_size)
            global_step += 1
    accuracy = float((jnp.argmax(logits_fn(params, x_test), axis=1) == y_test).mean())
    workbench.log(step=global_step, test_accuracy=accuracy)
    np.savez(workbench.artifacts_dir() / "mlp_params.npz", **{k: np.asarray(v) for k, v in params.items()})
    print(f"jax MLP: {epochs} epochs, {global_step} steps in {time.perf_counter() - t0:.1f} s, "
          f"test accuracy {accuracy:.3f}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    accuracy = train(args.epochs, args.batch_size, args.hidden, args.learning_rate, args.seed)
    if accuracy < 0.9:
        raise SystemExit(f"test accuracy {accuracy:.3f} is below 0.9")


if __name__ == "__main__":
    main()
