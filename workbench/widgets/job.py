"""`JobProgress`: a job's state, elapsed time, live log tail and loss plot, with a cancel button."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import ipywidgets as w

from workbench.units import as_utc
from workbench.widgets.live import Poller
from workbench.widgets.loss_plot import LossPlot
from workbench.widgets.render import (
    TERMINAL_JOB_STATES,
    duration,
    error_html,
    esc,
    state_badge,
)

LOG_TAIL_LINES = 40


def metric_series(dataset: Any, name: str = "loss") -> tuple[list[float], list[float]]:
    """(steps, values) of one metric from a job's metrics Dataset, NaNs dropped."""
    if dataset is None or name not in getattr(dataset, "data_vars", {}):
        return [], []
    series = dataset[name].to_series().dropna()
    return [float(s) for s in series.index], [float(v) for v in series.to_numpy()]


def log_tail(text: str | None, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


class LogTail:
    """The last `lines` lines of a job's log, read on from where the last read stopped (`job.read_log`),
    so a view that refreshes every half second does not read the whole file each time."""

    def __init__(self, lines: int = LOG_TAIL_LINES) -> None:
        self.lines = lines
        self.offset = 0
        self._kept = ""  # the last lines with their line ends: a line still being written is joined on the next read

    def update(self, job: Any) -> str:
        """Read what the log gained since the last call; the tail as `log_tail` shows it."""
        while True:
            chunk = job.read_log(self.offset)
            if chunk.text:
                self._kept = "".join((self._kept + chunk.text).splitlines(keepends=True)[-self.lines:])
            if chunk.next_offset == self.offset or chunk.ended:
                break
            self.offset = chunk.next_offset
        self.offset = chunk.next_offset
        return log_tail(self._kept, self.lines)


def elapsed_s(job: Any, now: dt.datetime | None = None) -> float | None:
    start = getattr(job, "started_at", None)
    if start is None:
        return None
    end = getattr(job, "ended_at", None) or now or dt.datetime.now(dt.UTC)
    return (as_utc(end) - as_utc(start)).total_seconds()


class JobProgress(w.VBox):
    """Live view of one job; refreshes in a background thread until the job ends.

    `JobProgress(job)` or `JobProgress(wb, job_id)`; `metric` picks the plotted metric.
    """

    def __init__(self, job: Any, job_id: str | None = None, *, metric: str = "loss", every_s: float = 0.5) -> None:
        self.job = job if job_id is None else job.jobs.get(job_id)
        self.metric = metric
        self.header = w.HTML()
        self.error = w.HTML()
        self.plot = LossPlot(metric=metric)
        self.log_view = w.HTML()
        self._log = LogTail()
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop")
        self.cancel_button.on_click(self._cancel)
        super().__init__([w.HBox([self.header, self.cancel_button]), self.error, self.plot, self.log_view])
        self.refresh(reread=False)
        self.poller = Poller(self.refresh, every_s, f"workbench-job-{self.job.id}").start() if not self.done else None

    @property
    def done(self) -> bool:
        return self.job.state in TERMINAL_JOB_STATES

    def _cancel(self, *_: Any) -> None:
        self.cancel_button.disabled = True
        try:
            self.job.cancel(wait=False)
        except Exception as exc:
            self.error.value = error_html(f"Could not cancel {self.job.id}", str(exc))

    def refresh(self, reread: bool = True) -> bool:
        """Re-read the job and update every part; False once it has ended (stops the poller)."""
        job = self.job.refresh() if reread else self.job
        self.header.value = (
            f"<div class='wb-job-progress'><b>{esc(job.name)}</b> <code>{esc(job.id)}</code> "
            f"{state_badge(job.state)} · elapsed {esc(duration(elapsed_s(job)))}</div>"
        )
        self.cancel_button.layout.display = "none" if self.done else ""
        if job.error:
            lines = job.error.strip().splitlines()
            self.error.value = error_html(f"Job {job.state}", lines[-1] if lines else job.error, job.error)
        try:
            steps, values = metric_series(job.metrics(), self.metric)
        except Exception:
            steps, values = [], []
        self.plot.update(steps, values)
        tail = self._log.update(job)
        self.log_view.value = (
            "<pre style='background:#1a202c;color:#e2e8f0;padding:8px;border-radius:6px;max-height:240px;"
            f"overflow:auto;font-size:12px;margin:0'>{html.escape(tail) or '(no output yet)'}</pre>"
        )
        return not self.done

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends and the view shows its last state; returns the job."""
        self.job.wait(timeout=timeout)
        if self.poller is not None:
            self.poller.stop()
            self.poller.join(timeout=5)
        self.refresh()
        return self.job

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
