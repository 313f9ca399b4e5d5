"""What accelerators exist: NVML discovery, declared fleets and the device catalog."""

from workbench.inventory.devices import Device, Inventory, MigInstance, Node
from workbench.inventory.discovery import discover
from workbench.inventory.fleet import load_fleet

__all__ = ["Device", "Inventory", "MigInstance", "Node", "discover", "load_fleet"]
