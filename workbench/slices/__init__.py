"""Slices: leases on part of a device (MIG instance, GPU fraction, whole GPUs, CPU cores).

`wb.slices` is `workbench.slices.service.LocalSliceService`, which implements the interface
`workbench.slices.interface.SliceService` (records: `lease.LeaseRecord`; words: `types`); the placement engine (`placement`,
`fgd`), the MIG planner (`mig`) and the trace replay (`replay`) are pure and usable alone.
"""

from workbench.slices.lease import Lease
from workbench.slices.mig import MigPlan, plan_mig

__all__ = ["Lease", "MigPlan", "plan_mig"]
