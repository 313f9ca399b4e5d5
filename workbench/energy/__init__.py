"""Energy and carbon: measure each job's joules, price them in gCO2e, start deferrable work in clean hours.

`EnergyMeter` (meter.py) measures; `CarbonSignal`/`load_signal` (signal.py) give grid intensity;
`plan_start` (schedule.py) is the pure carbon-aware planner; `EnergyService` (service.py) is
`wb.energy`, which ties them to the settings, the inventory and the store.
"""

from workbench.energy.meter import EnergyMeter, EnergyReading
from workbench.energy.schedule import Plan, plan_start
from workbench.energy.signal import CarbonSignal, SignalError, load_signal

__all__ = ["CarbonSignal", "EnergyMeter", "EnergyReading", "Plan", "SignalError", "load_signal", "plan_start"]
