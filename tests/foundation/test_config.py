from pathlib import Path

import pytest

from workbench.config import load_settings
from workbench.errors import ConfigError


def test_defaults_need_nothing(tmp_path: Path) -> None:
    s = load_settings(environ={"WORKBENCH_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.database == f"sqlite:///{tmp_path / 'workbench.db'}"
    assert s.dask_scheduler is None
    assert s.user


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "workbench.toml"
    cfg.write_text('[workbench]\nproject = "vision"\nlease_ttl_s = 60\nuser = "ada"\n')
    env = {"WORKBENCH_LEASE_TTL_S": "90", "WORKBENCH_HOME": str(tmp_path)}
    s = load_settings(cfg, environ=env)
    assert (s.project, s.lease_ttl_s, s.user) == ("vision", 90.0, "ada")
    assert load_settings(cfg, environ=env, user="grace").user == "grace"


def test_admin_users_from_environment_is_a_list(tmp_path: Path) -> None:
    s = load_settings(environ={"WORKBENCH_ADMIN_USERS": "ada,grace", "WORKBENCH_HOME": str(tmp_path)})
    assert s.admin_users == ["ada", "grace"]


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "workbench.toml"
    cfg.write_text("[workbench]\nproject = \n")
    with pytest.raises(ConfigError, match=r"workbench.toml: not valid TOML.*line 2"):
        load_settings(cfg, environ={})


def test_unknown_setting_in_file_lists_the_valid_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "workbench.toml"
    cfg.write_text('lease_ttl = 5\n')
    with pytest.raises(ConfigError, match=r"workbench.toml: unknown setting 'lease_ttl'; valid: .*lease_ttl_s"):
        load_settings(cfg, environ={})


def test_bad_value_names_its_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"WORKBENCH_LEASE_TTL_S: lease_ttl_s = '-3'"):
        load_settings(environ={"WORKBENCH_LEASE_TTL_S": "-3"})


def test_unknown_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"WORKBENCH_DATABSE_URL is not a workbench setting; valid: .*WORKBENCH_DATABASE_URL"):
        load_settings(environ={"WORKBENCH_DATABSE_URL": "sqlite://"})


def test_slice_and_job_environment_is_not_a_setting(tmp_path: Path) -> None:
    env = {"WORKBENCH_SLICE_ID": "lease-1", "WORKBENCH_JOB_ID": "job-1", "WORKBENCH_HOME": str(tmp_path)}
    assert load_settings(environ=env).home == tmp_path


def test_workbench_config_variable_points_at_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('project = "nlp"\n')
    assert load_settings(environ={"WORKBENCH_CONFIG": str(cfg)}).project == "nlp"


def test_table_settings_from_environment_are_json(tmp_path: Path) -> None:
    env = {"WORKBENCH_QUOTAS": '{"user:*": {"gpus": 2}}', "WORKBENCH_HOME": str(tmp_path)}
    assert load_settings(environ=env).quotas == {"user:*": {"gpus": 2}}
    with pytest.raises(ConfigError, match="WORKBENCH_QUOTAS: not valid JSON"):
        load_settings(environ={"WORKBENCH_QUOTAS": "{gpus"})


def test_a_misspelt_quota_is_an_error_not_a_quota_that_limits_nothing() -> None:
    with pytest.raises(ConfigError, match="quota 'user:\\*' names 'gpu'; valid: gpus, cpus, memory_gib"):
        load_settings(environ={"WORKBENCH_QUOTAS": '{"user:*": {"gpu": 2}}'})
    with pytest.raises(ConfigError, match="quota scope 'team:x' is not user:NAME"):
        load_settings(environ={"WORKBENCH_QUOTAS": '{"team:x": {"gpus": 2}}'})
    assert load_settings(environ={"WORKBENCH_QUOTAS": '{"project:p": {"memory_gib": 64}}'}).quotas == {"project:p": {"memory_gib": 64}}
