"""Fleet & slices: the drawing of every node and device, my slices, and the request form."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn
import param

from workbench.app.feed import Feed, Unavailable
from workbench.slices.offers import lease_label
from workbench.widgets.choices import SliceChoice, form_options
from workbench.widgets.render import (
    HOLDING_STATES,
    WAITING_STATES,
    error_html,
    esc,
    fleet_html,
)
from workbench.widgets.slice_form import lease_status_html

if TYPE_CHECKING:
    from workbench.slices.keepalive import KeepAlive

_LEASE_COLUMNS = ["id", "kind", "what", "device", "state", "queue", "reason", "expires", "auto-renew"]
NO_SLICES = ("You hold no slices. Request one above: it stays yours while this page is open (auto-renew renews it "
             "before it expires) or until you release it. A job can also ask for its own slice on the Job queue page.")


def _lease_row(lease: Any, keepalive: KeepAlive | None = None) -> dict[str, Any]:
    kind = getattr(lease, "kind", None)
    what = lease_label(lease)
    expires = getattr(lease, "expires_at", None)
    return {
        "id": lease.id, "kind": kind, "what": what,
        "device": ", ".join(getattr(lease, "device_keys", None) or ()) or "–",
        "state": getattr(lease, "state", None),
        "queue": getattr(lease, "queue_position", None) or "",
        "reason": getattr(lease, "reason", None) or "",
        "expires": expires.strftime("%H:%M:%S UTC") if expires is not None else "",
        "auto-renew": (("on (click to turn off)" if keepalive.auto_renew(lease.id) else "off (click to turn on)")
                       if keepalive is not None else ""),
    }


class SliceForm(param.Parameterized):
    """Request a slice: the kinds and MIG profiles offered follow the chosen device.

    The request runs in a worker thread (a queued request blocks until granted), so the page
    stays live; while it waits, `refresh` shows the queued lease's position and reason.
    """

    def __init__(self, feed: Feed, on_change: Any, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.on_change = on_change
        offers = feed.offers()
        self.choices = {} if isinstance(offers, Unavailable) else {group.label: group for group in offers}
        self.device = pn.widgets.Select(label="Device", options=list(self.choices), width=260)
        self.node = pn.widgets.Select(label="Node", options={"any node": ""}, width=170)
        self.kind = pn.widgets.RadioButtonGroup(label="Kind", options={}, button_type="primary",
                                                button_style="outline", margin=(26, 10, 10, 10))
        self.profile = pn.widgets.Select(label="MIG profile", options=[], width=160)
        self.fraction = pn.widgets.FloatSlider(label="Share of the GPU", start=0.05, end=1.0, step=0.05, value=0.25,
                                               width=220)
        self.cpus = pn.widgets.IntInput(label="CPU cores", start=1, value=1, width=110)
        self.priority = pn.widgets.IntInput(label="Priority", start=-100, end=100, value=0, width=100)
        self.submit = pn.widgets.Button(label="Request slice", button_type="primary", width=150,
                                        css_classes=["wb-request"])
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-request-status"])
        self.pending = False
        self.device.param.watch(self._device_changed, "value")
        self.kind.param.watch(self._kind_changed, "value")
        self.submit.on_click(self._request)
        self._device_changed()

    def _device_changed(self, *_: Any) -> None:
        if self.device.value not in self.choices:
            return
        offer = form_options(self.choices[self.device.value])
        self.node.options = dict(offer.nodes)
        self.kind.options = dict(offer.kinds)
        self.kind.value = offer.kinds[0][1]
        self.profile.options, self.profile.value = offer.profiles, offer.profile
        self._kind_changed()

    def _kind_changed(self, *_: Any) -> None:
        kind = self.kind.value
        self.profile.visible = kind == "mig"
        self.fraction.visible = kind == "fraction"
        self.cpus.visible = kind == "cpu"

    def choice(self) -> SliceChoice:
        return SliceChoice(device=self.choices[self.device.value], kind=self.kind.value, profile=self.profile.value,
                           fraction=self.fraction.value, cpus=self.cpus.value, priority=self.priority.value,
                           node=self.node.value or None)

    async def _request(self, *_: Any) -> None:
        if self.device.value not in self.choices:
            self.status.object = error_html("No device", "the inventory lists no device to request from")
            return
        choice = self.choice()
        self.pending = True
        self.submit.disabled = True
        self.status.object = f"<div class='wb-lease-status'>Requesting <code>{esc(choice.spec())}</code>…</div>"
        try:
            lease = await asyncio.get_running_loop().run_in_executor(None, lambda: choice.request(self.feed.wb))
        except Exception as exc:  # the allocator's refusal, shown where the user asked
            self.status.object = error_html("Request refused", str(exc))
        else:
            self.status.object = lease_status_html(lease)
        finally:
            self.pending = False
            self.submit.disabled = False
            self.feed.invalidate()
            self.on_change()

    def show_waiting(self, mine: list[Any]) -> None:
        """While a request waits, show its queue position and the allocator's reason."""
        if not self.pending:
            return
        queued = [lease for lease in mine if getattr(lease, "state", None) in WAITING_STATES]
        if queued:
            self.status.object = lease_status_html(queued[-1])

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.HTML("<h3 style='margin:0'>Request a slice</h3>"),
            pn.Row(self.device, self.node, self.kind),
            pn.Row(self.profile, self.fraction, self.cpus, self.priority),
            self.submit, self.status,
            styles={"background": "#fff", "border": "1px solid #e2e8f0", "border-radius": "8px"},
            sizing_mode="stretch_width", css_classes=["wb-slice-form"],
        )


class FleetPage(param.Parameterized):
    """The fleet drawing, my slices (with release) and the request form; refreshed every second."""

    def __init__(self, feed: Feed, keepalive: KeepAlive | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.keepalive = keepalive
        self.drawing = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-fleet-pane"])
        self.notice = pn.pane.HTML("", sizing_mode="stretch_width")
        self.mine = pn.widgets.Tabulator(
            pd.DataFrame(columns=_LEASE_COLUMNS, dtype=object), show_index=False, disabled=True, sizing_mode="stretch_width",
            buttons={"release": "<span class='wb-release' title='Release this slice'>Release</span>"},
            layout="fit_data_stretch", css_classes=["wb-my-slices"],
            hidden_columns=[] if keepalive is not None else ["auto-renew"],
            header_tooltips={"auto-renew": "While this page is open it renews the slice before it expires; click to turn it on or off",
                             "expires": "The lease ends then unless renewed"},
        )
        self.empty = pn.pane.HTML(f"<div class='wb-empty wb-no-slices'>{esc(NO_SLICES)}</div>", sizing_mode="stretch_width",
                                  visible=False)
        self.mine.on_click(self._clicked)
        self.form = SliceForm(feed, on_change=self.refresh)
        self._last_html = ""
        self.refresh()

    def _clicked(self, event: Any) -> None:
        lease_id = self.mine.value.iloc[event.row]["id"]
        if event.column == "auto-renew" and self.keepalive is not None:
            self.keepalive.set_auto_renew(lease_id, not self.keepalive.auto_renew(lease_id))
            self.refresh()
            return
        if event.column != "release":
            return
        try:
            self.feed.wb.slices.release(lease_id)
        except Exception as exc:
            self.form.status.object = error_html(f"Could not release {lease_id}", str(exc))
            return
        self.feed.invalidate()
        self.form.status.object = f"<div class='wb-released'>Released slice <code>{esc(lease_id)}</code>.</div>"
        self.refresh()

    def refresh(self) -> None:
        inventory = self.feed.devices()
        if isinstance(inventory, Unavailable):
            self.drawing.object = error_html("Cannot read the inventory", inventory.reason)
            return
        leases = self.feed.leases()
        self.notice.object = (
            error_html("Slices are not available", leases.reason) if isinstance(leases, Unavailable) else ""
        )
        text = fleet_html(inventory, [] if isinstance(leases, Unavailable) else leases)
        if text != self._last_html:
            self.drawing.object = self._last_html = text
        mine = self.feed.my_leases()
        if not isinstance(mine, Unavailable):
            self.form.show_waiting(mine)
            frame = pd.DataFrame([_lease_row(lease, self.keepalive) for lease in mine
                                  if getattr(lease, "state", None) in HOLDING_STATES | WAITING_STATES],
                                 columns=_LEASE_COLUMNS, dtype=object)
            if not frame.equals(self.mine.value):
                self.mine.value = frame
            self.empty.visible = frame.empty
            self.mine.visible = not frame.empty

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.notice,
            self.drawing,
            self.form,
            pn.pane.HTML("<h3 style='margin:8px 0 0 0'>My slices</h3>"),
            self.empty,
            self.mine,
            sizing_mode="stretch_width",
        )
