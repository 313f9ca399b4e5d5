"""A job's page: state, error and traceback, the live loss plot, the log tail, artifacts, its profile."""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from workbench.app.feed import Feed, Unavailable
from workbench.units import format_energy_j
from workbench.widgets.job import LogTail, elapsed_s, metric_series
from workbench.widgets.render import (
    TERMINAL_JOB_STATES,
    duration,
    error_html,
    esc,
    state_badge,
)

LOG_TAIL_LINES = 200
NO_PROFILE = ("This job captured no profile. To see where its time goes, submit it again from the Job queue page "
              "with \u201ccapture a profile\u201d ticked (from a terminal: workbench jobs run SCRIPT --profile).")


def find_profile_id(wb: Any, job: Any) -> str | None:
    """The profile captured by this job, if the profiles service knows one."""
    try:
        profiles = wb.profiles.list(job_id=job.id)
    except Exception:
        return None
    return profiles[0].id if profiles else None


def loss_figure(source: ColumnDataSource) -> Any:
    fig = figure(height=300, sizing_mode="stretch_width", x_axis_label="step", y_axis_label="loss",
                 tools="pan,wheel_zoom,box_zoom,reset,hover", toolbar_location="above")
    fig.line("step", "loss", source=source, line_width=2, color="#0b5394")
    fig.scatter("step", "loss", source=source, size=4, color="#0b5394")
    fig.title.text = "Loss by step"
    return fig


class JobPage(param.Parameterized):
    """Everything about one job; refreshes until the job ends, then once more and stops."""

    def __init__(self, feed: Feed, job_id: str, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.job_id = job_id
        self.title = f"Job {job_id}"
        self.header = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-job-header"])
        self.error = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-job-error"])
        self.source = ColumnDataSource({"step": [], "loss": []})
        self.plot = pn.pane.Bokeh(loss_figure(self.source), sizing_mode="stretch_width", css_classes=["wb-loss-plot"])
        self.logs = pn.pane.HTML("<pre class='wb-log'></pre>", sizing_mode="stretch_width", css_classes=["wb-job-logs"])
        self.artifacts = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-job-artifacts"])
        self.profile = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-job-profile"])
        self.cancel = pn.widgets.Button(label="Cancel job", button_type="danger", width=130, visible=False)
        self.cancel.on_click(self._cancel)
        self._done = False
        self._ended_ticks = 0
        self._logs_text = ""
        self._log = LogTail(LOG_TAIL_LINES)
        self.refresh()

    def _cancel(self, *_: Any) -> None:
        try:
            self.feed.wb.jobs.cancel(self.job_id, wait=False)
        except Exception as exc:
            self.error.object = error_html(f"Could not cancel {self.job_id}", str(exc))
        self.feed.invalidate()
        self.refresh()

    def refresh(self) -> None:
        if self._done:
            return
        jobs = self.feed.service("jobs")
        if isinstance(jobs, Unavailable):
            self.header.object = error_html("Jobs are not available", jobs.reason)
            return
        try:
            job = jobs.get(self.job_id)
        except Exception as exc:
            self.header.object = error_html(f"No job {self.job_id!r}", str(exc))
            self._done = True
            return
        self.title = f"Job {job.id} · {getattr(job, 'name', '')}"
        state = job.state
        rows = {
            "state": state_badge(state),
            "owner": esc(getattr(job, "owner", None)),
            "slice": esc(getattr(job, "slice_spec", None) or getattr(job, "lease_id", None) or "–"),
            "framework": esc(getattr(job, "framework", None) or "none"),
            "elapsed": esc(duration(elapsed_s(job))),
        }
        energy_j = getattr(job, "energy_j", None)
        if energy_j is not None:
            rows["energy"] = esc(format_energy_j(energy_j, estimated=bool(getattr(job, "energy_estimated", False))))
        body = "".join(f"<tr><th>{k}</th><td class='wb-job-{k}'>{v}</td></tr>" for k, v in rows.items())
        header = f"<h3 style='margin:0 0 4px 0'>{esc(getattr(job, 'name', ''))}</h3><table class='wb-kv'>{body}</table>"
        if header != self.header.object:
            self.header.object = header
        self.cancel.visible = state not in TERMINAL_JOB_STATES
        if state == "failed" or getattr(job, "error", None):
            text = job.error or "the job failed without an error message"
            first, _, rest = text.strip().partition("\n")
            html_error = error_html(f"Job {state}", text.strip().splitlines()[-1] if text.strip() else first,
                                    text if rest else None)
            if html_error != self.error.object:
                self.error.object = html_error
        self._refresh_metrics(job, ended=state in TERMINAL_JOB_STATES)
        self._refresh_logs(job)
        if state in TERMINAL_JOB_STATES:
            self._refresh_artifacts(job)
            found = self._refresh_profile(job)
            # The profile is registered just after the job ends: keep looking for a little while.
            self._ended_ticks += 1
            self._done = found or not getattr(job, "profile", False) or self._ended_ticks > 60

    def _refresh_metrics(self, job: Any, ended: bool) -> None:
        try:
            steps, values = metric_series(job.metrics())
        except Exception as exc:
            self.plot.object.title.text = f"Loss by step — metrics unavailable: {exc}"
            return
        if ended and not steps:
            self.plot.object.title.text = "Loss by step — this job logged no loss (workbench.log(step=..., loss=...))"
        have = len(self.source.data["step"])
        if len(steps) > have:
            self.source.stream({"step": steps[have:], "loss": values[have:]})
        elif len(steps) < have:
            self.source.data = {"step": steps, "loss": values}

    def _refresh_logs(self, job: Any) -> None:
        try:
            text = self._log.update(job)
        except Exception as exc:
            text = f"(logs unavailable: {exc})"
        if text != self._logs_text:
            self._logs_text = text
            self.logs.object = f"<pre class='wb-log'>{html.escape(text) or '(no output yet)'}</pre>"

    def _refresh_artifacts(self, job: Any) -> None:
        try:
            items = list(job.artifacts())
        except Exception as exc:
            self.artifacts.object = error_html("Artifacts unavailable", str(exc))
            return
        if not items:
            self.artifacts.object = "<div class='wb-empty'>No artifacts.</div>"
            return
        lines = "".join(f"<li><code>{esc(getattr(p, 'name', p))}</code> <small>{esc(p)}</small></li>" for p in items)
        self.artifacts.object = f"<ul class='wb-artifact-list'>{lines}</ul>"

    def _refresh_profile(self, job: Any) -> bool:
        profile_id = find_profile_id(self.feed.wb, job)
        if profile_id is None:
            self.profile.object = (
                "<div class='wb-empty'>Waiting for the job's profile to be registered…</div>"
                if getattr(job, "profile", False) and self._ended_ticks < 60 else
                f"<div class='wb-empty wb-no-profile'>{esc(NO_PROFILE)}</div>"
            )
            return False
        self.profile.object = (
            f"<a class='wb-open-profile' href='?page=profiles&id={esc(profile_id)}'>Open profile "
            f"<code>{esc(profile_id)}</code> →</a>"
        )
        return True

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.header, self.cancel, sizing_mode="stretch_width"),
            self.error,
            pn.Tabs(("Metrics", self.plot), ("Logs", self.logs), ("Artifacts", self.artifacts),
                    ("Profile", self.profile), dynamic=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
