"""The Jupyter Server extension: the workbench's REST API under `{base_url}workbench/api/`.

Enabled on install by `jupyter-config/jupyter_server_config.d/workbench.json` (shipped in the
wheel's shared data), so `jupyter lab` and a JupyterHub single-user server both serve it. The
handlers in `workbench.jupyter.handlers` parse, call `workbench.api.Workbench`, and serialize;
`openapi.json` beside this file describes every route.
"""

from __future__ import annotations

from typing import Any

LABEXTENSION_NAME = "gpu-workbench-jupyterlab"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.jupyter"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """For `jupyter labextension develop`: the prebuilt extension lives in `workbench/labextension`."""
    return [{"src": "../labextension", "dest": LABEXTENSION_NAME}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from workbench.jupyter.extension import load

    load(serverapp)
