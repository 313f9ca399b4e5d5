"""`ProfileView`: a profile's summary, top kernels, timeline (zoomable) and a comparison, in tabs."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from workbench.widgets.render import error_html


def _bokeh_output(make: Any) -> w.Output:
    """An Output widget showing a Bokeh figure inline (zoom and pan work in the notebook).

    A timeline too large for the page (`tags[0]["served"]`) answers zooms from Python, which
    needs a live document: it is shown through Panel, whose notebook comms carry the callbacks."""
    out = w.Output()
    with out:
        try:
            from bokeh.io import output_notebook, show

            fig = make()
            if fig.tags and isinstance(fig.tags[0], dict) and fig.tags[0].get("served"):
                import panel as pn
                from IPython.display import display

                pn.extension()
                display(pn.pane.Bokeh(fig))
                return out
            output_notebook(hide_banner=True)
            show(fig)
        except Exception as exc:  # one view failing leaves the others usable
            from IPython.display import HTML, display

            display(HTML(error_html("View unavailable", f"{type(exc).__name__}: {exc}")))
    return out


def _table_html(frame: Any, rows: int = 20) -> str:
    if frame is None or len(frame) == 0:
        return "<i>no rows</i>"
    return frame.head(rows).to_html(index=False, float_format=lambda v: f"{v:,.4g}", border=0)


class ProfileView(w.Tab):
    """`ProfileView(profile)`; `ProfileView(profile, other)` adds a comparison tab (b − a)."""

    def __init__(self, profile: Any, other: Any = None, *, top: int = 20) -> None:
        self.profile = profile
        summary = w.HTML(profile._repr_html_())
        kernels = w.HTML(_table_html(profile.kernels(), top))
        timeline = _bokeh_output(profile.timeline)
        children: list[Any] = [summary, kernels, timeline]
        titles = ["Summary", "Top kernels", "Timeline"]
        if other is not None:
            table = profile.compare(other)
            children.append(w.VBox([w.HTML(_table_html(table, top)), _bokeh_output(lambda: _compare_plot(table))]))
            titles.append(f"Compare with {other.name}")
        super().__init__(children=children)
        for i, title in enumerate(titles):
            self.set_title(i, title)


def _compare_plot(table: Any) -> Any:
    from workbench.profiles.views import plot_compare

    return plot_compare(table)
