"""The dynamic micro-batcher: concurrent requests joined into one `session.run`.

Triton's knobs: at most `max_batch_size` rows in a batch, and a request waits at most
`max_wait_ms` for others to join it. Unlike a fixed delay, a batch waits only while more
requests are known to be on their way (received by the HTTP layer, not yet queued): a lone
request at concurrency 1 runs at once instead of paying `max_wait_ms`, and under load the
requests that queued while the previous batch ran are taken together without waiting at all.

A batch whose runs take long (by a moving average, over `INLINE_BELOW_S`) runs on one thread
beside the event loop, so the next batch forms while it runs; a quick one (a small MLP's 10 µs)
runs on the loop itself, where handing it to a thread and back would cost ten times the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
import numpy as np

INLINE_BELOW_S = 0.0005
RunFn = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class _Pending:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future[list[np.ndarray]]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Joins requests along the first dimension; `batchable=False` runs each request alone."""

    def __init__(self, run: RunFn, *, max_batch_size: int, max_wait_ms: float, batchable: bool,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self._run = run
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_wait_s = max(0.0, float(max_wait_ms)) / 1000
        self.batchable = batchable
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-model")
        self.arriving = 0  # requests being read and checked, about to be queued
        self.run_s = INLINE_BELOW_S  # moving average of a run's time: starts on the thread, then learns

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for one request (its own rows of the batch it ran in)."""
        assert self._queue is not None, "start() the batcher inside the event loop first"
        rows = int(next(iter(inputs.values())).shape[0]) if self.batchable and inputs else 1
        pending = _Pending(inputs, rows, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            rows = batch[0].rows
            if self.batchable:
                deadline = time.perf_counter() + self.max_wait_s
                while rows < self.max_batch_size:
                    if not queue.empty():
                        item = queue.get_nowait()
                    elif self.arriving > 0 and (left := deadline - time.perf_counter()) > 0:
                        try:
                            item = await asyncio.wait_for(queue.get(), left)
                        except TimeoutError:
                            break
                    else:
                        break
                    if rows + item.rows > self.max_batch_size:
                        await self._execute(loop, batch, rows)  # a full batch; the newcomer starts the next
                        batch, rows = [item], item.rows
                        continue
                    batch.append(item)
                    rows += item.rows
            await self._execute(loop, batch, rows)

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: Sequence[_Pending], rows: int) -> None:
        started = time.perf_counter()
        inputs = batch[0].inputs if len(batch) == 1 else {
            name: np.concatenate([p.inputs[name] for p in batch]) for name in batch[0].inputs
        }
        try:
            if self.run_s < INLINE_BELOW_S:
                outputs = self._run(inputs)
            else:
                outputs = await loop.run_in_executor(self._executor, self._run, inputs)
        except Exception as exc:  # noqa: BLE001 - the requests get the error; the loop keeps serving
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        seconds = time.perf_counter() - started
        self.run_s = 0.8 * self.run_s + 0.2 * seconds
        if self._on_batch is not None:
            self._on_batch(rows, seconds)
        offset = 0
        for p in batch:
            if not p.future.done():
                p.future.set_result(outputs if len(batch) == 1 else [o[offset:offset + p.rows] for o in outputs])
            offset += p.rows


def default_threads(env: dict[str, str]) -> int | None:
    """Intra-op threads for ONNX Runtime from the slice's environment (its CPU cores), if set."""
    for key in ("WORKBENCH_SLICE_CPU_CORES", "OMP_NUM_THREADS"):
        value = env.get(key)
        if value:
            try:
                return max(1, int(float(value)))
            except ValueError:
                continue
    return None

