"""A small PyTorch CNN on scikit-learn's digits (8x8 images, 10 classes), on CPU in seconds.

Run it as a workbench job (`workbench jobs run examples/torch_cnn_digits.py --framework torch --wait`)
or by hand (`python examples/torch_cnn_digits.py`); `workbench.log` records the loss per step in a
job and does nothing outside one. Prints the test accuracy and saves the weights as an artifact.
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
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # N, 1, 8, 8
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def build_model():  # type: ignore[no-untyped-def]
    """The CNN (1×8×8 images → 10 logits); `torch.load` the job's `cnn_weights.pt` into it to serve it."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 4 x 4
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def train(epochs: int = 12, batch_size: int = 64, learning_rate: float = 3e-3, seed: int = 0) -> float:
    """Train; returns the test accuracy."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = (torch.from_numpy(a) for a in load_digits_split(seed))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    global_step = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            workbench.log(step=global_step, loss=loss.item(), epoch=epoch, samples=batch_size)
            global_step += 1
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test.to(device)).argmax(1).cpu() == y_test).float().mean())
    workbench.log(step=global_step, test_accuracy=accuracy)
    torch.save(model.state_dict(), workbench.artifacts_dir() / "cnn_weights.pt")
    print(f"torch CNN: {epochs} epochs, {global_step} steps in {time.perf_counter() - t0:.1f} s, "
          f"test accuracy {accuracy:.3f}")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    accuracy = train(args.epochs, args.batch_size, args.learning_rate, args.seed)
    if accuracy < 0.9:
        raise SystemExit(f"test accuracy {accuracy:.3f} is below 0.9")


if __name__ == "__main__":
    main()
