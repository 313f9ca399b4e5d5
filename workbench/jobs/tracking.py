"""MLflow, when it is installed and `WORKBENCH_MLFLOW_URI` is set: a run per finished job.

The driver logs the job's params, its metrics (every step of the xarray Dataset), its state and
the artifacts folder to the tracking server after the job ends. Not exercised by the test suite:
MLflow is not a dependency of the workbench (install it next to it to use this).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def log_to_mlflow(tracking_uri: str, job: Any) -> str | None:
    """Record `job` as an MLflow run; returns the run id, or None when MLflow is not installed."""
    try:
        import mlflow
    except ImportError:
        return None
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(job.project) or None
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(job.project)
    run = client.create_run(experiment_id, run_name=job.name, tags={
        "workbench.job_id": job.id, "workbench.owner": job.owner, "workbench.framework": str(job.framework),
        "workbench.slice": str(job.lease_id or job.slice_spec),
    })
    run_id = run.info.run_id
    for key, value in (job.params or {}).items():
        client.log_param(run_id, key, str(value)[:500])
    ds = job.metrics()
    for name in ds.data_vars:
        for step, value in zip(ds["step"].values, ds[name].values, strict=True):
            if not math.isnan(float(value)):
                client.log_metric(run_id, str(name), float(value), step=int(step))
    artifacts = Path(job.folder or "") / "artifacts"
    if artifacts.is_dir():
        client.log_artifacts(run_id, str(artifacts))
    client.set_terminated(run_id, status="FINISHED" if job.state == "succeeded" else "FAILED")
    return str(run_id)
