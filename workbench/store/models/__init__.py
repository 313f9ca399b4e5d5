"""All tables. Each noun owns one module; migrations in `workbench/store/migrations/versions`."""

from workbench.store.models.base import Base, new_id, utcnow
from workbench.store.models.devices import DeviceRow
from workbench.store.models.endpoints import EndpointRow
from workbench.store.models.jobs import JobEventRow, JobRow
from workbench.store.models.kernels import KernelResultRow
from workbench.store.models.profiles import ProfileRow
from workbench.store.models.slices import LeaseEventRow, LeaseRow

__all__ = [
    "Base", "DeviceRow", "EndpointRow", "JobEventRow", "JobRow", "KernelResultRow", "LeaseEventRow", "LeaseRow",
    "ProfileRow", "new_id", "utcnow",
]
