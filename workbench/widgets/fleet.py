"""`FleetWidget`: the fleet drawing in a notebook, refreshed in the background."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from workbench.widgets.live import Poller
from workbench.widgets.render import error_html, fleet_html


class FleetWidget(w.VBox):
    """Each node and device with whose lease each part is; live every `every_s` seconds (0: static)."""

    def __init__(self, wb: Any, every_s: float = 2.0, fleet: Any = None) -> None:
        self.wb = wb
        self.fleet = fleet
        self.drawing = w.HTML()
        super().__init__([self.drawing])
        self.refresh()
        self.poller = Poller(self.refresh, every_s, "workbench-fleet-widget").start() if every_s > 0 else None

    def refresh(self) -> bool:
        inventory = self.wb.devices(self.fleet)
        try:
            leases = list(self.wb.slices.list(all_users=True)) if self.fleet is None else []
        except ModuleNotFoundError:
            leases = []
        except Exception as exc:
            self.drawing.value = fleet_html(inventory) + error_html("Cannot read the slices", str(exc))
            return True
        text = fleet_html(inventory, leases)
        if text != self.drawing.value:
            self.drawing.value = text
        return True

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()

    def close(self) -> None:
        self.stop()
        super().close()
