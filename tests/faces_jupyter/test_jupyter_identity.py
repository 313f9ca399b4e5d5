"""Who the API acts for: several identities on one server (as under JupyterHub), the
`JUPYTERHUB_USER` of a single-user server, a root base URL, and a proxy entry named `workbench`."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_fixtures import *  # noqa: F403  (api, jp_fetch, ...)
from jupyter_server.auth.identity import IdentityProvider, User

TOKENS = {"token alice-token": "a@b", "token carol-token": "carol", "token admin-token": "ops"}


class TokenPerUserProvider(IdentityProvider):
    """Like JupyterHub's: each API token belongs to a named user (a stand-in for the hub's
    OAuth, which needs a running hub); real Jupyter Server machinery otherwise."""

    def get_user(self, handler: Any) -> User | None:
        name = TOKENS.get(handler.request.headers.get("Authorization", ""))
        return User(username=name) if name else None

    def is_token_authenticated(self, handler: Any) -> bool:
        return True  # API tokens are exempt from the XSRF check, as in Jupyter Server


class TestSeveralIdentities:
    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        return {
            "ServerApp": {
                "jpserver_extensions": {"workbench.jupyter": True},
                "identity_provider_class": TokenPerUserProvider,
            }
        }

    @staticmethod
    def as_(token: str) -> dict[str, Any]:
        return {"headers": {"Authorization": f"token {token}"}}

    async def test_each_user_sees_and_acts_on_their_own_only(self, api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WORKBENCH_ADMIN_USERS", "ops")
        status, info = await api("GET", "", **self.as_("alice-token"))
        assert status == 200 and info["user"] == "a@b" and info["admin"] is False
        status, mine = await api("POST", "slices", {"spec": "cpu:1"}, **self.as_("alice-token"))
        assert status == 201 and mine["owner"] == "a@b"
        status, carols = await api("POST", "slices", {"spec": "cpu:1"}, **self.as_("carol-token"))
        assert status == 201 and carols["owner"] == "carol"

        status, listing = await api("GET", "slices", **self.as_("carol-token"))
        assert [s["id"] for s in listing["slices"]] == [carols["id"]]
        status, data = await api("DELETE", f"slices/{mine['id']}", **self.as_("carol-token"))
        assert status == 403 and "a@b" in data["error"]
        status, still = await api("GET", f"slices/{mine['id']}", **self.as_("alice-token"))
        assert still["state"] == "active"

        status, info = await api("GET", "", **self.as_("admin-token"))
        assert info["user"] == "ops" and info["admin"] is True
        status, everyone = await api("GET", "slices", params={"all": "true"}, **self.as_("admin-token"))
        assert sorted(s["owner"] for s in everyone["slices"]) == ["a@b", "carol"]
        status, released = await api("DELETE", f"slices/{carols['id']}", **self.as_("admin-token"))
        assert status == 200 and released["state"] == "released"

    async def test_an_unknown_token_is_401(self, api: Any) -> None:
        status, data = await api("GET", "slices", **self.as_("mallory-token"))
        assert status == 401 and data["reason"] == "unauthorized"


class TestSingleUserServerUnderAHub:
    """A JupyterHub single-user server: the hub sets JUPYTERHUB_USER and serves it at /user/<name>/."""

    async def test_the_hub_user_owns_what_the_api_does(self, api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JUPYTERHUB_USER", "a@b")
        monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/a%40b/")
        monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")  # never called here
        status, info = await api("GET", "")
        assert info["user"] == "a@b" and info["dashboard_url"] == "/user/a%40b/workbench/"
        status, lease = await api("POST", "slices", {"spec": "cpu:1"})
        assert status == 201 and lease["owner"] == "a@b"


class TestRootBaseUrl:
    @pytest.fixture
    def jp_base_url(self) -> str:
        return "/"

    async def test_the_api_answers_at_the_root(self, api: Any) -> None:
        status, data = await api("GET", "devices")
        assert status == 200 and data["devices"]
        status, doc = await api("GET", "openapi.json")
        assert doc["servers"] == [{"url": "/workbench/api"}]


class TestBesideTheDashboardProxy:
    """jupyter-server-proxy serves the Panel dashboard at {base_url}workbench/; the API still wins."""

    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        return {
            "ServerApp": {"jpserver_extensions": {"workbench.jupyter": True, "jupyter_server_proxy": True}},
            "ServerProxy": {"servers": {"workbench": {"command": ["true"], "launcher_entry": {"enabled": False}}}},
        }

    async def test_api_routes_are_not_swallowed_by_the_proxy(self, api: Any, jp_serverapp: Any) -> None:
        from jupyter_server_proxy.handlers import SuperviseAndProxyHandler

        status, data = await api("GET", "devices")
        assert status == 200 and data["devices"]
        status, data = await api("GET", "nothing-here")
        assert status == 404 and "no such workbench API route" in data["error"]
        # and the proxy's own route is registered at {base_url}workbench/
        app = jp_serverapp.web_app
        found = [r for rule in app.default_router.rules for r in getattr(rule.target, "rules", [])
                 if isinstance(r.target, type) and issubclass(r.target, SuperviseAndProxyHandler)]
        assert any("/workbench" in r.matcher.regex.pattern for r in found)


class TestIdleCulling:
    async def test_polling_is_not_activity_but_actions_are(self, api: Any, jp_serverapp: Any) -> None:
        """The sidebar's GETs must not keep a server alive for JupyterHub's idle culler."""
        settings = jp_serverapp.web_app.settings
        settings.pop("api_last_activity", None)
        for path in ("devices", "slices", "jobs", ""):
            status, _ = await api("GET", path)
            assert status == 200
        assert "api_last_activity" not in settings
        status, _ = await api("POST", "slices", {"spec": "cpu:1"})
        assert status == 201 and "api_last_activity" in settings
