"""Settings: built-in defaults < `workbench.toml` < `WORKBENCH_*` environment variables.

The defaults are the embedded ones: an SQLite file and the data folders under the user's data
directory (platformdirs), an embedded Dask `LocalCluster`, the local user. Nothing has to be set
up by hand. A typo is an error, not a silently ignored setting: unknown keys in the TOML file
and unknown `WORKBENCH_*` variables are reported with the valid names.
"""

from __future__ import annotations

import getpass
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from workbench.errors import ConfigError

ENV_PREFIX = "WORKBENCH_"
QUOTA_RESOURCES = ("gpus", "cpus", "memory_gib")
# Variables that are read elsewhere and are not settings: the config file's name, and the
# environment a slice or a job hands its processes (WORKBENCH_SLICE_*, WORKBENCH_JOB_*).
_ENV_NOT_SETTINGS = {"WORKBENCH_CONFIG"}
_ENV_NOT_SETTINGS_PREFIXES = ("WORKBENCH_SLICE_", "WORKBENCH_JOB_", "WORKBENCH_TEST_")


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("workbench", appauthor=False))


def _default_user() -> str:
    for name in ("JUPYTERHUB_USER",):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "user"


class Settings(BaseModel):
    """Every setting the workbench reads; each is also `WORKBENCH_<NAME>` in the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=_default_home, description="Data directory: database, logs, traces, artifacts.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<home>/workbench.db.")
    dask_scheduler: str | None = Field(None, description="Address of an existing Dask scheduler; default an embedded LocalCluster.")
    fleet: Path | None = Field(None, description="A declared fleet (TOML or Alibaba node-list CSV) used instead of discovery.")
    user: str = Field(default_factory=_default_user, description="Who this process acts for.")
    project: str = Field("default", description="Project that leases and jobs are charged to.")
    admin_users: list[str] = Field(default_factory=list, description="Users allowed to act on others' slices and jobs.")
    database_busy_timeout_s: float = Field(30.0, gt=0, description="How long a SQLite write waits for another writer's lock before it fails (and is retried).")
    database_retry_s: float = Field(60.0, ge=0, description="How long a database write that fails transiently (busy, a full disk, PostgreSQL restarting) is retried, with backoff.")
    lease_ttl_s: float = Field(300.0, gt=0, description="A lease expires unless renewed within this time.")
    idle_after_s: float = Field(1800.0, gt=0, description="A lease with no device use for this long is idle.")
    idle_grace_s: float = Field(600.0, ge=0, description="An idle lease is reclaimed this long after its owner is told, when others wait.")
    sweep_interval_s: float = Field(60.0, ge=0, description="How often a long-running server (Jupyter) expires leases, checks idle ones and grants waiting requests; 0: never.")
    policy: str | None = Field(None, description="Placement policy; default the one that measures best.")
    quotas: dict[str, dict[str, float]] = Field(default_factory=dict, description='Slice quotas: {"user:NAME"|"project:NAME"|"user:*"|"project:*": {"gpus": N, "cpus": N, "memory_gib": N}}.')
    preempt_min_runtime_s: float = Field(300.0, ge=0, description="A lease runs at least this long before a higher priority may preempt it.")
    mlflow_uri: str | None = Field(None, description="MLflow tracking server for job params, metrics and artifacts.")
    carbon_signal: str | Path | None = Field(None, description='Carbon signal instead of the built-in zone: a CSV of hourly grid carbon intensity (timestamp, avg_CI), or a live source: "electricitymaps:ZONE", "watttime:REGION" or "ukcarbonintensity".')
    carbon_token: SecretStr | None = Field(None, description="API token of the live carbon source (Electricity Maps, WattTime).")
    carbon_zone: str = Field("CISO", description="Grid zone of the built-in carbon series.")
    profile_max_json_bytes: int = Field(2 << 30, gt=0, description="A trace holding more JSON text than this (after gunzip) is refused.")
    profile_max_events: int = Field(20_000_000, gt=0, description="A trace with more events than this is refused.")
    profile_memory_bytes: int = Field(512 << 20, ge=16 << 20, description="Memory budget of one trace ingest: sizes the pieces of text decoded at once.")
    profile_timeline_browser_events: int = Field(200_000, ge=0, description="Timelines of more events than this send the browser only what is in view (needs a live document: the dashboard).")

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'workbench.db'}"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def traces_dir(self) -> Path:
        return self.home / "traces"

    @field_validator("quotas")
    @classmethod
    def _known_quotas(cls, quotas: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """A misspelt scope or resource would silently not limit anything: refuse it."""
        for scope, limits in quotas.items():
            kind, _, name = scope.partition(":")
            if kind not in ("user", "project") or not name:
                raise ValueError(f"quota scope {scope!r} is not user:NAME, project:NAME, user:* or project:*")
            for resource, limit in limits.items():
                if resource not in QUOTA_RESOURCES:
                    raise ValueError(f"quota {scope!r} names {resource!r}; valid: {', '.join(QUOTA_RESOURCES)}")
                if limit < 0:
                    raise ValueError(f"quota {scope!r} {resource} = {limit} must be 0 or more")
        return quotas


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings file ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    section = data.get("workbench", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [workbench] must be a table of settings")
    return dict(section)


def _env_values(environ: dict[str, str]) -> dict[str, Any]:
    valid = set(Settings.model_fields)
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _ENV_NOT_SETTINGS or key.startswith(_ENV_NOT_SETTINGS_PREFIXES):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in valid:
            raise ConfigError(
                f"environment variable {key} is not a workbench setting; valid: "
                + ", ".join(ENV_PREFIX + n.upper() for n in sorted(valid))
            )
        if name == "admin_users":
            values[name] = [v for v in raw.split(",") if v]
        elif raw.lstrip().startswith("{"):  # table-valued settings (quotas) are JSON in the environment
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"environment variable {key}: not valid JSON: {exc}") from None
        else:
            values[name] = raw
    return values


def _format_validation(error: ValidationError, origin: dict[str, str]) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"])
        where = origin.get(name, "setting")
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown setting {name!r}; valid: {', '.join(sorted(Settings.model_fields))}")
        else:
            lines.append(f"{where}: {name} = {item.get('input')!r}: {item['msg']}")
    return "; ".join(lines)


def find_config_file(environ: dict[str, str]) -> Path | None:
    """`WORKBENCH_CONFIG`, else `./workbench.toml`, else `<user config dir>/workbench.toml`."""
    if environ.get("WORKBENCH_CONFIG"):
        return Path(environ["WORKBENCH_CONFIG"])
    for candidate in (Path.cwd() / "workbench.toml", Path(platformdirs.user_config_dir("workbench", appauthor=False)) / "workbench.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(config_file: Path | None = None, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Merge defaults, the TOML file and the environment (later wins), then `overrides`."""
    env = dict(os.environ if environ is None else environ)
    path = config_file or find_config_file(env)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        for key, value in _read_toml(path).items():
            merged[key] = value
            origin[key] = str(path)
    for key, value in _env_values(env).items():
        merged[key] = value
        origin[key] = f"environment variable {ENV_PREFIX}{key.upper()}"
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, origin)) from None
