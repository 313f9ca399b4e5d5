"""Profiles: the list, one profile's summary, top kernels and zoomable timeline, and a comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn
import param

from workbench.app.feed import Feed, Unavailable
from workbench.widgets.render import error_html, esc

if TYPE_CHECKING:
    from workbench.profiles.profile import Profile


def as_frame(value: Any) -> pd.DataFrame | None:
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, dict):
        return pd.DataFrame([{"figure": k, "value": v} for k, v in value.items()])
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return pd.DataFrame(value)
    return None


def show(value: Any, **kwargs: Any) -> pn.viewable.Viewable:
    """A facade result as a pane: tables as Tabulator, Bokeh figures as plots, else its HTML repr."""
    frame = as_frame(value)
    if frame is not None:
        return pn.widgets.Tabulator(frame, show_index=False, disabled=True, sizing_mode="stretch_width",
                                    layout="fit_data_table", max_height=420, **kwargs)
    return pn.panel(value, sizing_mode="stretch_width")


def _tall(fig: Any, min_height: int = 300) -> Any:
    """A one-lane timeline is a sliver: give it room to zoom into."""
    fig.height = max(fig.height or 0, min_height)
    return fig


NO_PROFILES = ("No profiles yet. Tick \u201ccapture a profile\u201d when you submit a job on the Job queue page, "
               "or load a trace file (workbench profiles summary TRACE, or wb.profiles.load(path) in a notebook).")
NO_OTHER_PROFILE = ("There is no other profile to compare with yet. Run the job again with \u201ccapture a profile\u201d "
                    "ticked (say after a change), then compare the two runs here.")
NO_GPU_KERNELS = ("This trace has no GPU kernels: it was captured on the CPU (or the GPU ran nothing), so there is no "
                  "kernel to rank. The Timeline tab shows where the CPU time went; a job run on a GPU slice with "
                  "\u201ccapture a profile\u201d ticked records its kernels.")


def top_kernels(profile: Any) -> pn.viewable.Viewable:
    """The kernel table and chart, or why there are none (a CPU-only trace)."""
    kernels = profile.kernels()
    if kernels.empty:
        return pn.pane.HTML(f"<div class='wb-empty wb-no-kernels'>{esc(NO_GPU_KERNELS)}</div>", sizing_mode="stretch_width")
    return pn.Column(show(kernels.head(50)), pn.pane.Bokeh(profile.plot("kernels")), sizing_mode="stretch_width")


def profile_row(p: Profile) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name or "",
        "job": p.job_id or "",
        "source": str(p.path),
        "created": p.created_at.strftime("%Y-%m-%d %H:%M:%S") if p.created_at is not None else "",
    }


class ProfilesPage(param.Parameterized):
    """The list of profiles; with `?id=` one profile, with `&compare=` that profile against another."""

    def __init__(self, feed: Feed, profile_id: str | None = None, compare_id: str | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.title = "Profiles"
        self.body = pn.Column(sizing_mode="stretch_width")
        profiles = feed.profiles()
        if isinstance(profiles, Unavailable):
            self.body.append(pn.pane.HTML(error_html("Profiles are not available", profiles.reason),
                                          sizing_mode="stretch_width"))
            return
        rows = [profile_row(p) for p in profiles]
        table = pn.widgets.Tabulator(
            pd.DataFrame(rows, columns=["id", "name", "job", "source", "created"]), show_index=False, disabled=True,
            sizing_mode="stretch_width", layout="fit_data_stretch", max_height=260, selectable=False,
            formatters={"id": {"type": "link", "urlPrefix": "?page=profiles&id=", "target": "_self"}},
            css_classes=["wb-profiles-table"],
        )
        if not rows:
            self.body.append(pn.pane.HTML(f"<div class='wb-empty wb-no-profiles'>{esc(NO_PROFILES)}</div>"))
        self.body.append(table)
        if profile_id:
            self.body.append(self._profile(profile_id, compare_id, [r["id"] for r in rows]))

    def _profile(self, profile_id: str, compare_id: str | None, ids: list[str]) -> pn.viewable.Viewable:
        service = self.feed.wb.profiles
        try:
            profile = service.get(profile_id)
        except Exception as exc:
            return pn.pane.HTML(error_html(f"No profile {profile_id!r}", str(exc)), sizing_mode="stretch_width")
        self.title = f"Profile {profile_id}"
        browser_max = self.feed.wb.settings.profile_timeline_browser_events
        tabs = pn.Tabs(dynamic=True, sizing_mode="stretch_width", css_classes=["wb-profile-tabs"])
        views = (
            ("Summary", lambda: pn.pane.HTML(profile._repr_html_(), sizing_mode="stretch_width")),
            ("Top kernels", lambda: top_kernels(profile)),
            ("Timeline", lambda: pn.Column(pn.pane.Bokeh(_tall(profile.timeline(browser_max_events=browser_max)),
                                                         sizing_mode="stretch_width"),
                                           sizing_mode="stretch_width", css_classes=["wb-timeline"])),
        )
        for label, view in views:
            try:
                tabs.append((label, view()))
            except Exception as exc:  # one analysis failing leaves the others readable
                tabs.append((label, pn.pane.HTML(error_html(f"{label} unavailable", f"{type(exc).__name__}: {exc}"),
                                                 sizing_mode="stretch_width")))
        others = [i for i in ids if i != profile_id]
        picker = pn.widgets.Select(label="Compare with", options=[""] + others, value=compare_id or "", width=260,
                                   disabled=not others)
        compare_pane = pn.Column(sizing_mode="stretch_width", css_classes=["wb-compare"])

        def compare(*_: Any) -> None:
            other = picker.value
            compare_pane.clear()
            if not others:
                compare_pane.append(pn.pane.HTML(f"<div class='wb-empty wb-no-compare'>{esc(NO_OTHER_PROFILE)}</div>",
                                                 sizing_mode="stretch_width"))
                return
            if not other:
                compare_pane.append(pn.pane.HTML("<div class='wb-empty'>Choose a profile above to see what got "
                                                 "slower, faster, appeared or vanished against this one.</div>",
                                                 sizing_mode="stretch_width"))
                return
            try:
                result = service.compare(profile_id, other)
            except Exception as exc:
                compare_pane.append(pn.pane.HTML(error_html("Comparison failed", str(exc))))
                return
            compare_pane.append(show(result.head(100) if isinstance(result, pd.DataFrame) else result))
            try:
                from workbench.profiles.views import plot_compare

                compare_pane.append(pn.pane.Bokeh(plot_compare(result), sizing_mode="stretch_width"))
            except Exception as exc:  # the table above is the comparison; say why the chart is missing
                compare_pane.append(pn.pane.HTML(error_html("No comparison chart", f"{type(exc).__name__}: {exc}")))

        picker.param.watch(compare, "value")
        compare()
        tabs.append(("Compare", pn.Column(picker, compare_pane, sizing_mode="stretch_width")))
        return pn.Column(pn.pane.HTML(f"<h3 style='margin:12px 0 0 0'>Profile <code>{esc(profile_id)}</code></h3>"),
                         tabs, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self.body
