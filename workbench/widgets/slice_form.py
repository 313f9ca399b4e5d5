"""`SliceRequestForm`: ask for a slice from a notebook; shows the queue position and reason while waiting."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from workbench.widgets.choices import SliceChoice, device_choices, form_options
from workbench.widgets.live import Poller
from workbench.widgets.render import (
    HOLDING_STATES,
    WAITING_STATES,
    error_html,
    esc,
    state_badge,
)


def lease_status_html(lease: Any, expiry: bool = False) -> str:
    """The lease's state, where it runs, its queue position and reason; with `expiry`, when it
    ends unless renewed (for a view that redraws it on each renewal)."""
    state = getattr(lease, "state", None)
    keys = ", ".join(getattr(lease, "device_keys", None) or ())
    where = f"on {esc(keys)}" if keys else "not placed yet"
    extra = ""
    if state in WAITING_STATES:
        extra = (f" · queue position <b class='wb-queue'>{esc(getattr(lease, 'queue_position', None))}</b>"
                 f" · <span class='wb-reason'>{esc(getattr(lease, 'reason', None))}</span>")
    elif state not in HOLDING_STATES and getattr(lease, "reason", None):
        extra = f" · <span class='wb-reason'>{esc(lease.reason)}</span>"
    expires = getattr(lease, "expires_at", None)
    if expiry and state in HOLDING_STATES and expires is not None:
        extra += f" · <span class='wb-expires'>expires {expires:%H:%M:%S} UTC unless renewed</span>"
    return (f"<div class='wb-lease-status'>Slice <code>{esc(lease.id)}</code> {state_badge(state)} "
            f"{where}{extra}</div>")


class SliceRequestForm(w.VBox):
    """Kinds and MIG profiles follow the chosen device (from the catalog); `.lease` holds the grant.

    The request runs in a thread, so the notebook stays usable while it waits in the queue. Once
    granted, the form keeps the lease it shows alive while it is open (the keep-alive rule,
    `wb.slices.keep_alive()`): it renews it while the kernel runs, unless "auto-renew" is unticked,
    and stops when the form is closed or the kernel ends.
    """

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self.lease: Any = None
        self.choices = device_choices(wb)
        style = {"description_width": "90px"}
        self.device = w.Dropdown(options=list(self.choices), description="Device", style=style)
        self.node = w.Dropdown(options=[("any node", "")], description="Node", style=style)
        self.kind = w.ToggleButtons(options=[], description="Kind", style=style)
        self.profile = w.Dropdown(options=[], description="MIG profile", style=style)
        self.fraction = w.FloatSlider(value=0.25, min=0.05, max=1.0, step=0.05, description="Share", style=style)
        self.cpus = w.BoundedIntText(value=1, min=1, max=1_000_000, description="CPU cores", style=style)
        self.priority = w.IntText(value=0, description="Priority", style=style)
        self.submit = w.Button(description="Request slice", button_style="primary", icon="plus")
        self.status = w.HTML()
        self.auto_renew = w.Checkbox(value=True, description="auto-renew while this notebook runs", indent=False)
        self.keepalive = wb.slices.keep_alive()
        self._keeper: Poller | None = None
        self._thread: threading.Thread | None = None
        self._watch: Poller | None = None
        self.device.observe(self._device_changed, "value")
        self.kind.observe(self._kind_changed, "value")
        self.submit.on_click(self.request)
        self.auto_renew.observe(self._auto_renew_changed, "value")
        super().__init__([self.device, self.node, self.kind, self.profile, self.fraction, self.cpus,
                          self.priority, self.submit, self.status, self.auto_renew])
        self._device_changed()

    def _device_changed(self, *_: Any) -> None:
        if self.device.value not in self.choices:
            return
        offer = form_options(self.choices[self.device.value])
        self.node.options = offer.nodes
        self.kind.options = offer.kinds
        self.kind.value = offer.kinds[0][1]
        self.profile.options, self.profile.value = offer.profiles, offer.profile
        self._kind_changed()

    def _kind_changed(self, *_: Any) -> None:
        shown = {"mig": self.profile, "fraction": self.fraction, "cpu": self.cpus}
        for kind, widget in shown.items():
            widget.layout.display = "" if self.kind.value == kind else "none"

    def choice(self) -> SliceChoice:
        return SliceChoice(device=self.choices[self.device.value], kind=self.kind.value, profile=self.profile.value,
                           fraction=self.fraction.value, cpus=self.cpus.value, priority=self.priority.value,
                           node=self.node.value or None)

    def request(self, *_: Any) -> None:
        """Send the request (what the button does); `wait()` blocks for the answer."""
        choice = self.choice()
        self.submit.disabled = True
        self.status.value = f"Requesting <code>{esc(choice.spec())}</code>…"
        self._thread = threading.Thread(target=self._run, args=(choice,), name="workbench-slice-request", daemon=True)
        self._thread.start()
        self._watch = Poller(self._show_queue, 0.5, "workbench-slice-queue").start()

    def _run(self, choice: SliceChoice) -> None:
        try:
            self.lease = choice.request(self.wb)
        except Exception as exc:  # the allocator's refusal, with its reason
            self.status.value = error_html("Request refused", str(exc))
        else:
            self.status.value = lease_status_html(self.lease, expiry=True)
            self.keepalive.set_auto_renew(self.lease.id, self.auto_renew.value)
            if self._keeper is None:
                self._keeper = Poller(self._keep, self.keepalive.period_s, "workbench-slice-keepalive").start()
        finally:
            if self._watch is not None:
                self._watch.stop()
            self.submit.disabled = False

    def _show_queue(self) -> bool:
        queued = [lease for lease in self.wb.slices.list() if lease.state in WAITING_STATES]
        if queued and self._thread is not None and self._thread.is_alive():
            self.status.value = lease_status_html(queued[-1])
        return True

    def _auto_renew_changed(self, change: Any) -> None:
        if self.lease is not None:
            self.keepalive.set_auto_renew(self.lease.id, bool(change["new"]))

    def _keep(self) -> bool:
        """One keep-alive beat for the lease shown; the expiry in the status follows each renewal."""
        lease = self.lease
        if lease is None or self.keepalive.closed:
            return False
        for renewed in self.keepalive.beat([lease.refresh()]):
            self.status.value = lease_status_html(renewed, expiry=True)
        return lease.live

    def close(self) -> None:
        """The form is gone: its lease is no longer renewed (it expires one TTL after the last renewal)."""
        self.keepalive.close()
        if self._keeper is not None:
            self._keeper.stop()
        super().close()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the request has an answer; returns the lease (None if refused)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.lease
