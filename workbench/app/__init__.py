"""The Panel dashboard: fleet and slices, the job queue, a job, profiles and kernels.

`workbench serve` runs it (`serve()` below); `panel serve` can run `workbench/app/dashboard.py`
too. One Bokeh app serves every page, chosen by the query string (`?page=jobs`,
`?page=job&id=J`), so links are relative and the dashboard works behind any path prefix. The
pages call `workbench.api.Workbench` only, through a `Feed` shared by all browser tabs.
"""

from __future__ import annotations

from workbench.app.server import create_dashboard, page, serve

__all__ = ["create_dashboard", "page", "serve"]
