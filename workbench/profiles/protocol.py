"""`ProfileService`: what the facade promises about `wb.profiles`, as a Protocol.

`workbench.profiles.service.ProfileService` (over the store) satisfies it; faces and the facade
are typed against this, so a second implementation (one over the REST API) is a drop-in.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from workbench.profiles.capture import Capture
    from workbench.profiles.profile import Profile
    from workbench.profiles.ranks import Ranks

    ProfileRef = Profile | str | os.PathLike[str]


class ProfileService(Protocol):
    """Profiles of one Workbench: load and register traces, find them, analyse and capture."""

    @property
    def cache_dir(self) -> Path: ...

    def load(self, path: str | os.PathLike[str], *, name: str | None = None, owner: str | None = None,
             job_id: str | None = None, device: str | None = None, framework: str | None = None) -> Profile: ...

    def register(self, path: str | os.PathLike[str], name: str | None = None, owner: str | None = None,
                 job_id: str | None = None, device: str | None = None, framework: str | None = None) -> Profile: ...

    def get(self, profile_id: str) -> Profile: ...

    def list(self, owner: str | None = None, job_id: str | None = None) -> builtins.list[Profile]: ...

    def resolve(self, ref: ProfileRef) -> Profile: ...

    def summary(self, path_or_id: ProfileRef) -> dict[str, Any]: ...

    def breakdown(self, path_or_id: ProfileRef) -> dict[str, Any]: ...

    def compare(self, a: ProfileRef, b: ProfileRef, *, by: str = "name", **kwargs: Any) -> pd.DataFrame: ...

    def stragglers(self, ranks: dict[int, ProfileRef] | builtins.list[ProfileRef]) -> pd.DataFrame: ...

    def load_ranks(self, folder_or_paths: str | os.PathLike[str] | builtins.list[str | os.PathLike[str]], *,
                   parallel: int | None = None, slice_spec: str = "cpu:1", limits: Any = None) -> Ranks: ...

    def capture(self, framework: str = "torch", name: str | None = None, *, job_id: str | None = None,
                out_dir: str | os.PathLike[str] | None = None,
                **options: Any) -> contextlib.AbstractContextManager[Capture]: ...

    def close(self) -> None: ...
