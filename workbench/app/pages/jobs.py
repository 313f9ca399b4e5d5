"""Job queue: every job in one Tabulator, kept live by streaming new rows and patching changed cells.

Re-sending a 1,000-row table each second would re-render the grid and lose the user's scroll and
sort; `stream` sends only the new rows and `patch` only the changed cells, so an update costs
bytes in proportion to what changed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import panel as pn
import param

from workbench.app.feed import Feed, Unavailable
from workbench.widgets.job import elapsed_s
from workbench.widgets.render import TERMINAL_JOB_STATES, duration, error_html

PAGE_SIZE = 25
PROFILE_LABEL = "capture a profile"
COLUMNS = ["id", "name", "owner", "state", "slice", "submitted", "started", "duration", "error"]


def job_row(job: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    created = getattr(job, "created_at", None)
    started = getattr(job, "started_at", None)
    error = (getattr(job, "error", None) or "").strip().splitlines()
    return {
        "id": job.id,
        "name": getattr(job, "name", "") or "",
        "owner": getattr(job, "owner", "") or "",
        "state": getattr(job, "state", "") or "",
        "slice": getattr(job, "slice_spec", None) or getattr(job, "lease_id", None) or "",
        "submitted": created.strftime("%Y-%m-%d %H:%M:%S") if created else "",
        # No ticking "elapsed" here: a cell that changes every second on every running job would
        # turn each refresh into hundreds of patches; the job's own page shows it live.
        "started": started.strftime("%H:%M:%S") if started else "",
        "duration": duration(elapsed_s(job, now)) if started and getattr(job, "ended_at", None) else "",
        "error": error[-1][:160] if error else "",
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Object columns: patching one cell of an Arrow-backed string column costs ~0.3 ms, of an object one ~µs."""
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object)


class JobQueue(param.Parameterized):
    """The live table; `update(jobs)` streams and patches, and says how many rows and cells changed."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.table = pn.widgets.Tabulator(
            _frame([]), show_index=False, disabled=True, selectable=False,
            sizing_mode="stretch_width", layout="fit_columns", header_filters=False,
            # Remote pagination: the browser holds (and re-renders) one page of rows, so an update
            # costs the same with 1,000 jobs as with 10; sorting and paging run on the server.
            pagination="remote", page_size=PAGE_SIZE,
            formatters={"id": {"type": "link", "urlPrefix": "?page=job&id=", "target": "_self"}},
            sorters=[{"field": "submitted", "dir": "desc"}],
            widths={"id": 170, "state": 100, "owner": 110, "submitted": 160, "started": 90, "duration": 90, "slice": 120},
            css_classes=["wb-jobs-table"],
        )
        self._rows: dict[str, tuple[int, dict[str, Any]]] = {}

    def update(self, jobs: list[Any]) -> tuple[int, int]:
        now = dt.datetime.now(dt.UTC)
        if not self._rows:  # the first fill replaces the (empty) value; streaming starts after
            rows = [job_row(job, now) for job in reversed(jobs)]
            self._rows = {row["id"]: (i, row) for i, row in enumerate(rows)}
            if rows:
                self.table.value = _frame(rows)
            return len(rows), 0
        new: list[dict[str, Any]] = []
        patches: dict[str, list[tuple[int, Any]]] = {}
        for job in jobs:
            row = job_row(job, now)
            known = self._rows.get(row["id"])
            if known is None:
                self._rows[row["id"]] = (len(self._rows), row)
                new.append(row)
                continue
            position, old = known
            changed = {k: v for k, v in row.items() if old.get(k) != v}
            if changed:
                self._rows[row["id"]] = (position, row)
                for column, value in changed.items():
                    patches.setdefault(column, []).append((position, value))
        if patches:
            self.table.patch(patches, as_index=False)
        if new:
            self.table.stream(_frame(new), follow=False)
            # With remote pagination the server sorts: re-cut the visible page so a new job shows
            # up in its place (the browser receives one page, not the table).
            self.table.param.trigger("page")
        return len(new), sum(len(v) for v in patches.values())


class SubmitForm(param.Parameterized):
    """Submit a script or notebook on one of my slices (or a slice spec the job requests itself)."""

    def __init__(self, feed: Feed, on_submit: Any, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.on_submit = on_submit
        self.path = pn.widgets.TextInput(label="Script or notebook", placeholder="examples/torch_cnn_digits.py", width=360)
        self.job_name = pn.widgets.TextInput(label="Name", placeholder="(from the file name)", width=180)
        self.framework = pn.widgets.Select(label="Framework", options={"none": "", "PyTorch": "torch", "JAX": "jax"},
                                           width=120)
        self.slice = pn.widgets.Select(label="Slice", options={"new CPU slice": "cpu"}, width=260)
        # A check box group of one: Bokeh's Checkbox draws its label beside the box, not as a <label>,
        # so a click on the words would not tick it; the group's options are real <label>s.
        self.profile = pn.widgets.CheckBoxGroup(options=[PROFILE_LABEL], value=[], margin=(30, 10, 10, 10),
                                                css_classes=["wb-profile-choice"])
        self.submit = pn.widgets.Button(label="Submit job", button_type="primary", width=130, margin=(26, 10, 10, 10))
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-submit-status"])
        self.submit.on_click(self._submit)
        self.refresh_slices()

    def refresh_slices(self) -> None:
        mine = self.feed.my_leases()
        options = {"new CPU slice": "cpu"}
        if not isinstance(mine, Unavailable):
            for lease in mine:
                if getattr(lease, "state", None) in ("active", "idle"):
                    label = lease.describe() if hasattr(lease, "describe") else lease.id
                    options[f"{lease.id} · {label}"] = lease.id
        if options != self.slice.options:
            current = self.slice.value
            self.slice.options = options
            self.slice.value = current if current in options.values() else list(options.values())[-1]

    def _submit(self, *_: Any) -> None:
        path = (self.path.value or "").strip()
        if not path:
            self.status.object = error_html("Nothing to run", "give the path of a .py script or an .ipynb notebook")
            return
        try:
            job = self.feed.wb.jobs.submit(path, slice=self.slice.value, framework=self.framework.value or None,
                                           name=self.job_name.value or None, profile=PROFILE_LABEL in self.profile.value)
        except Exception as exc:  # a bad path, a slice that ended: the facade's message, in the form
            self.status.object = error_html("Job not submitted", str(exc))
            return
        self.feed.invalidate()
        self.status.object = (f"<div class='wb-submitted'>Job <a href='?page=job&id={job.id}'><code>{job.id}</code></a> "
                              f"{job.state} — <a class='wb-open-job' href='?page=job&id={job.id}'>open it →</a></div>")
        self.on_submit()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.HTML("<h3 style='margin:0'>Submit a job</h3>"),
            pn.Row(self.path, self.job_name, self.framework, self.slice),
            pn.Row(self.profile, self.submit),
            self.status,
            styles={"background": "#fff", "border": "1px solid #e2e8f0", "border-radius": "8px"},
            sizing_mode="stretch_width", css_classes=["wb-submit-form"],
        )


class JobsPage(param.Parameterized):
    title = "Job queue"

    def __init__(self, feed: Feed, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.queue = JobQueue()
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-jobs-summary"])
        self.notice = pn.pane.HTML("", sizing_mode="stretch_width")
        self.form = SubmitForm(feed, on_submit=self.refresh)
        self.refresh()

    def refresh(self) -> None:
        jobs = self.feed.jobs()
        if isinstance(jobs, Unavailable):
            self.notice.object = error_html("Jobs are not available", jobs.reason)
            return
        self.notice.object = ""
        self.queue.update(jobs)
        self.form.refresh_slices()
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        active = sum(n for s, n in counts.items() if s not in TERMINAL_JOB_STATES)
        parts = " · ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))
        text = f"<div class='wb-legend'>{len(jobs):,} jobs, {active:,} active{' — ' + parts if parts else ''}</div>"
        if text != self.summary.object:
            self.summary.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.notice, self.form, self.summary, self.queue.table, sizing_mode="stretch_width")
