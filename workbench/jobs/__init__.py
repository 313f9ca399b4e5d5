"""Jobs: JAX, PyTorch or plain Python work run on Dask, bound to a slice, with logs, metrics, artifacts.

`wb.jobs` (`workbench.jobs.service.JobService`) submits and inspects jobs; inside a job,
`workbench.log(...)` and `workbench.artifacts_dir()` (`workbench.jobs.context`) record what it
does. Nothing heavy is imported here: slice workers import this package before the slice's
framework.
"""

from workbench.jobs.context import JobCancelled
from workbench.jobs.job import ACTIVE_STATES, STATES, TERMINAL_STATES, Job, JobList

__all__ = ["ACTIVE_STATES", "STATES", "TERMINAL_STATES", "Job", "JobCancelled", "JobList"]
