"""The REST API in an in-process Jupyter server (pytest-jupyter), under a hub-like prefix."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_fixtures import *  # noqa: F403  (api, jp_fetch, ...)
from jupyter_helpers import table_rows


async def test_devices_lists_this_machine_with_the_cpu(api: Any) -> None:
    status, data = await api("GET", "devices")
    assert status == 200
    cpu = [d for d in data["devices"] if d["kind"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["cores"] >= 1 and cpu[0]["mig_profiles"] == []
    assert data["nodes"][0]["devices"]


async def test_devices_of_a_declared_fleet_carry_the_mig_geometry(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_FLEET", str(Path(__file__).resolve().parents[2] / "data/fleets/h100_2x8.toml"))
    status, data = await api("GET", "devices")
    assert status == 200 and data["gpu_count"] == 16
    gpu = next(d for d in data["devices"] if d["kind"] == "gpu")
    names = [p["name"] for p in gpu["mig_profiles"]]
    assert names[0] == "1g.10gb" and "7g.80gb" in names and "3g.40gb" in names
    three = next(p for p in gpu["mig_profiles"] if p["name"] == "3g.40gb")
    assert three["compute_slices"] == 3 and three["memory_slices"] == 4 and three["max_count"] == 2


async def test_devices_carry_what_can_be_requested_on_each(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """MIG profiles only on the GPU in MIG mode, shares and whole GPUs only on the other: the core's offers."""
    from workbench.inventory.fleet import load_fleet
    from workbench.jupyter.schemas import Inventory
    from workbench.slices.offers import fleet_offers

    fleet = Path(__file__).resolve().parents[2] / "data/fleets/mig_and_plain.toml"
    monkeypatch.setenv("WORKBENCH_FLEET", str(fleet))
    status, data = await api("GET", "devices")
    assert status == 200
    Inventory.model_validate(data)  # the documented shape
    kinds = {d["key"]: {o["kind"] for o in d["offers"]} for d in data["devices"]}
    assert kinds == {"mig/0": {"mig"}, "plain/0": {"fraction", "whole"}}
    assert data["offers"] == [group.model_dump(mode="json") for group in fleet_offers(load_fleet(fleet))]
    for group in data["offers"]:
        for offer in group["offers"]:
            body = {"spec": offer["spec"], **({"models": [group["model"]]} if group["device_kind"] == "gpu" else {})}
            status, lease = await api("POST", "slices", body)
            assert status == 201 and lease["kind"] == offer["kind"] and lease["state"] == "active", (offer, lease)
            assert lease["label"] and set(lease["device_keys"]) <= set(group["devices"] or lease["device_keys"])
            assert (await api("DELETE", f"slices/{lease['id']}"))[0] == 200


async def test_info_names_the_user_and_the_services(api: Any) -> None:
    from workbench.config import load_settings

    status, data = await api("GET", "")
    assert status == 200
    assert data["user"] == load_settings().user and data["admin"] is False
    assert data["services"]["slices"] is True and data["services"]["jobs"] is True
    assert data["dashboard_url"] == "/user/a%40b/workbench/"


async def test_openapi_document_is_served_with_the_prefix(api: Any) -> None:
    status, doc = await api("GET", "openapi.json")
    assert status == 200
    assert doc["servers"] == [{"url": "/user/a%40b/workbench/api"}]
    assert doc["openapi"].startswith("3.")


def test_openapi_document_describes_every_route() -> None:
    """Each route of the handlers is a path of the document, and the other way round."""
    import re

    from workbench.jupyter.handlers import OPENAPI_PATH, route_table

    doc = json.loads(OPENAPI_PATH.read_text())
    documented = {re.sub(r"\{[a-z_]+\}", "ID", p) for p in doc["paths"]}
    routed = set()
    for pattern, _ in route_table():
        if pattern in (r"/.*", r"/openapi\.json"):
            continue
        routed.add("/" + pattern.strip("/?").replace("\\", "").replace("([A-Za-z0-9_.:-]{1,80})", "ID"))
    assert routed == documented


# -- authentication and errors ----------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "token not-the-token"])
async def test_a_request_without_the_token_is_refused_and_changes_nothing(api: Any, store_home: Path, header: str | None) -> None:
    headers = {"Authorization": header or ""}
    before = table_rows(store_home, "leases")
    for method, path, body in [("GET", "devices", None), ("GET", "slices", None), ("POST", "slices", {"spec": "cpu"})]:
        status, data = await api(method, path, body, headers=headers)
        # 401, not 403: the request says who it is not (a POST is stopped by Jupyter's XSRF check first)
        assert status == 401, (method, path, data)
        assert data["reason"] == "unauthorized" and "not authenticated" in data["error"] and "token" in data["error"]
    assert table_rows(store_home, "leases") == before


async def test_unknown_route_and_wrong_method_are_json(api: Any) -> None:
    status, data = await api("GET", "gpus")
    assert status == 404 and "no such workbench API route" in data["error"] and "openapi.json" in data["error"]
    status, data = await api("PUT", "devices", {})
    assert status == 405 and data["reason"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"{spec: cpu", 400, "not valid JSON"),
        (b"", 400, "no body"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b"{}", 400, '"spec": Field required'),
        (b'{"spec": "cpu", "colour": "red"}', 400, "unknown field"),
        (b'{"spec": "tpu:4"}', 400, "valid specs"),
        (b'{"spec": "9g.900gb"}', 400, "9g.900gb"),
        (b'{"spec": true}', 400, '"spec" should be a valid string or a valid number'),
        (b'{"spec": "cpu", "priority": 9223372036854775808}', 400, '"priority": Input should be less than or equal to 1000000'),
        (b'{"spec": 1' + b"0" * 400 + b"}", 400, '"spec": Input should be a finite number'),
        (b'{"spec": 0.0}', 400, '"spec": GPU fraction 0.0 is not valid: a fraction must be more than 0'),
        (b'{"spec": "cpu", "project": "' + b"p" * 201 + b'"}', 400, '"project": String should have at most 200 characters'),
        (b'{"spec": "cpu", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "recursion limit"),
        (b'{"spec": "\\ud800"}', 400, "not valid JSON"),
        (b'{"spec": 1.5}', 400, "fraction"),
        (b'{"spec": "cpu", "priority": "high"}', 400, "priority"),
        (b'{"spec": "cpu", "wait": true}', 400, "wait"),
        (b'{"spec": "cpu:100000"}', 400, "the most on one node"),
    ],
)
async def test_bad_slice_requests_say_why_and_change_nothing(api: Any, store_home: Path, raw: bytes, status: int, words: str) -> None:
    await api("GET", "slices")  # the store exists from here on
    before = table_rows(store_home, "leases")
    got, data = await api("POST", "slices", raw=raw)
    assert got == status, data
    assert words in data["error"], data
    assert set(data) == {"error", "reason"}
    assert table_rows(store_home, "leases") == before


# -- slices -----------------------------------------------------------------------------------
async def test_a_request_that_does_not_fit_now_is_409_and_leaves_no_lease(api: Any, store_home: Path) -> None:
    _, inventory = await api("GET", "devices")
    cores = next(d["cores"] for d in inventory["devices"] if d["kind"] == "cpu")
    status, first = await api("POST", "slices", {"spec": f"cpu:{cores}"})
    assert status == 201 and first["state"] == "active"
    before = table_rows(store_home, "leases")
    status, data = await api("POST", "slices", {"spec": "cpu:1"})
    assert status == 409 and data["reason"] == "conflict"
    assert "cannot be granted now" in data["error"]
    assert table_rows(store_home, "leases") == before


async def test_slice_lifecycle_request_list_renew_release(api: Any) -> None:
    status, lease = await api("POST", "slices", {"spec": "cpu:1", "project": "tests"})
    assert status == 201, lease
    assert lease["kind"] == "cpu" and lease["state"] == "active" and lease["project"] == "tests"
    assert lease["description"].startswith("1 CPU core")
    status, listing = await api("GET", "slices")
    assert [s["id"] for s in listing["slices"]] == [lease["id"]]
    status, renewed = await api("POST", f"slices/{lease['id']}/renew")
    assert status == 200 and renewed["expires_at"] >= lease["expires_at"]
    status, got = await api("GET", f"slices/{lease['id']}")
    assert status == 200 and got["id"] == lease["id"]
    status, released = await api("DELETE", f"slices/{lease['id']}")
    assert status == 200 and released["state"] == "released"
    status, listing = await api("GET", "slices")
    assert listing["slices"] == []
    status, data = await api("POST", f"slices/{lease['id']}/renew")
    assert status == 409 and "released" in data["error"]


async def test_someone_elses_slice_is_403_and_stays_held(api: Any, as_user: Any, store_home: Path) -> None:
    bob = as_user("bob").slices.request("cpu:1", wait=False)
    before = table_rows(store_home, "leases")
    for method, path in [("GET", f"slices/{bob.id}"), ("POST", f"slices/{bob.id}/renew"), ("DELETE", f"slices/{bob.id}")]:
        status, data = await api(method, path)
        assert status == 403, (method, data)
        assert "bob" in data["error"]
    assert table_rows(store_home, "leases") == before
    status, listing = await api("GET", "slices")
    assert listing["slices"] == []  # bob's slice is not mine to list
    status, data = await api("GET", "slices", params={"all": "true"})
    assert status == 403 and "admin" in data["error"]
    status, data = await api("GET", "slices/lease-does-not-exist")
    assert status == 404 and "lease-does-not-exist" in data["error"]


async def test_an_admin_may_list_and_release_others_slices(api: Any, as_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.config import load_settings

    monkeypatch.setenv("WORKBENCH_ADMIN_USERS", load_settings().user)
    bob = as_user("bob").slices.request("cpu:1", wait=False)
    status, listing = await api("GET", "slices", params={"all": "true"})
    assert status == 200 and [s["owner"] for s in listing["slices"]] == ["bob"]
    status, released = await api("DELETE", f"slices/{bob.id}")
    assert status == 200 and released["state"] == "released"


# -- jobs -------------------------------------------------------------------------------------
def _insert_job(home: Path, owner: str, job_id: str, log: str = "") -> None:
    """A job row owned by someone else, written through the store as the jobs service does."""
    from workbench.store import Store
    from workbench.store.models.jobs import JobRow

    folder = home / "jobs" / job_id
    folder.mkdir(parents=True)
    (folder / "job.log").write_text(log)
    store = Store(f"sqlite:///{home / 'workbench.db'}")
    with store.session() as s:
        s.add(JobRow(id=job_id, name="theirs", owner=owner, kind="script", target="x.py", state="running",
                     folder=str(folder), log_path=str(folder / "job.log")))
    store.close()


async def test_someone_elses_job_is_403_and_not_cancelled(api: Any, store_home: Path) -> None:
    await api("GET", "slices")  # creates the store
    _insert_job(store_home, "bob", "job-bobs", "bob's secret output\n")
    before = table_rows(store_home, "jobs")
    for method, path in [("GET", "jobs/job-bobs"), ("GET", "jobs/job-bobs/logs"), ("POST", "jobs/job-bobs/cancel")]:
        status, data = await api(method, path)
        assert status == 403, (method, path, data)
        assert "bob" in data["error"] and "secret" not in json.dumps(data)
    assert table_rows(store_home, "jobs") == before
    status, data = await api("GET", "jobs/job-nope")
    assert status == 404 and "job-nope" in data["error"]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, '"target"'),
        ({"target": "missing.py"}, "does not exist"),
        ({"target": "../../etc/passwd.py"}, "outside the Jupyter root"),
        ({"target": "data.csv"}, "neither a .py script"),
        ({"target": "hello.py", "retries": -1}, "retries"),
        ({"target": "hello.py", "timeout_s": 0}, "timeout_s"),
        ({"target": "hello.py", "slice": "tpu:1"}, "valid specs"),
        ({"target": "hello.py", "framework": "tensorflow"}, "tensorflow"),
        ({"target": "hello.py", "command": "rm -rf /"}, "unknown field"),
        ({"target": "hel\x00lo.py"}, "NUL character"),
        ({"target": "hello.py", "name": "\ud800"}, "not valid JSON"),
        ({"target": "a" * 5000 + ".py"}, '"target": String should have at most 1000 characters'),
        ({"target": "a" * 900 + ".py"}, "not a usable path"),
        ({"target": "hello.py", "retries": 10**30}, '"retries": Input should be less than or equal to 100'),
        ({"target": "hello.py", "priority": 2**63}, '"priority": Input should be less than or equal to 1000000'),
        ({"target": "hello.py", "project": "p" * 201}, '"project": String should have at most 200 characters'),
        ({"target": "hello.py", "params": _nested(25)}, '"params": nested more than 20 levels deep'),
        ({"target": "hello.py", "params": {"blob": "x" * 70_000}}, "at most 65,536"),
        ({"target": "hello.py", "slice": 0.0}, '"slice": GPU fraction 0.0 is not valid'),
    ],
)
async def test_bad_job_submissions_say_why_and_change_nothing(
    api: Any, jp_root_dir: Path, store_home: Path, body: dict[str, Any], words: str
) -> None:
    (jp_root_dir / "hello.py").write_text("print('hello')\n")
    (jp_root_dir / "data.csv").write_text("a,b\n")
    await api("GET", "slices")
    before = table_rows(store_home, "jobs")
    status, data = await api("POST", "jobs", body)
    assert status == 400, data
    assert words in data["error"], data
    assert table_rows(store_home, "jobs") == before


async def test_log_offsets_are_validated(api: Any, store_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.config import load_settings

    await api("GET", "slices")
    _insert_job(store_home, load_settings().user, "job-mine", "héllo\nworld\n")
    status, data = await api("GET", "jobs/job-mine/logs", params={"offset": "-1"})
    assert status == 400 and "offset" in data["error"]
    status, data = await api("GET", "jobs/job-mine/logs", params={"offset": "x"})
    assert status == 400
    status, data = await api("GET", "jobs/job-mine/logs", params={"offset": "17592186040321"})
    assert status == 400 and "offset=17592186040321 is out of range" in data["error"], data
    status, data = await api("GET", "jobs/job-mine/logs", params={"offset": "1000000"})
    assert status == 200 and data["text"] == "" and data["next_offset"] == 1_000_000
    status, first = await api("GET", "jobs/job-mine/logs")
    assert status == 200 and first["text"] == "héllo\nworld\n" and first["next_offset"] == len("héllo\nworld\n".encode())
    status, rest = await api("GET", "jobs/job-mine/logs", params={"offset": str(first["next_offset"])})
    assert rest["text"] == "" and rest["done"] is False  # still running


async def test_a_script_job_runs_to_success_and_its_log_follows(api: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / "work").mkdir()
    (jp_root_dir / "work" / "count.py").write_text("for i in range(3):\n    print('step', i, flush=True)\n")
    status, lease = await api("POST", "slices", {"spec": "cpu:1"})
    assert status == 201
    status, job = await api("POST", "jobs", {"target": "work/count.py", "slice": lease["id"], "name": "count"})
    assert status == 201, job
    assert job["owner"] == lease["owner"] and job["state"] in ("queued", "allocating")
    text, offset = "", 0
    for _ in range(600):
        status, chunk = await api("GET", f"jobs/{job['id']}/logs", params={"offset": str(offset)})
        assert status == 200
        text += chunk["text"]
        offset = chunk["next_offset"]
        if chunk["done"]:
            break
        await asyncio.sleep(0.1)
    status, job = await api("GET", f"jobs/{job['id']}")
    assert job["state"] == "succeeded", job
    assert "step 0" in text and "step 2" in text
    status, listing = await api("GET", "jobs")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    status, data = await api("POST", f"jobs/{job['id']}/cancel")
    assert status == 200 and data["state"] == "succeeded"  # cancelling a finished job changes nothing


# -- profiles and kernels ---------------------------------------------------------------------
async def test_profiles_list_is_empty_and_unknown_profile_is_404(api: Any) -> None:
    status, data = await api("GET", "profiles")
    assert status == 200 and data == {"profiles": []}
    status, data = await api("GET", "profiles/../summary")
    assert status == 404
    status, data = await api("GET", "profiles/prof-nope/summary")
    assert status == 404 and "prof-nope" in data["error"]


async def test_kernels_list_the_registry_and_results_validate_limit(api: Any) -> None:
    status, data = await api("GET", "kernels")
    assert status == 200
    softmax = [k for k in data["kernels"] if k["name"] == "softmax"]
    assert {k["backend"] for k in softmax} >= {"triton", "pallas"}
    assert all(isinstance(k["dtypes"], list) for k in data["kernels"])
    status, data = await api("GET", "kernels/results", params={"kernel": "softmax"})
    assert status == 200 and data == {"results": []}
    status, data = await api("GET", "kernels/results", params={"limit": "0"})
    assert status == 400 and "limit" in data["error"]


async def test_profiles_list_mine_and_summarize_by_id_only(api: Any, as_user: Any) -> None:
    from workbench.config import load_settings

    trace = Path(__file__).resolve().parents[2] / "data" / "traces" / "alexnet_a100.json.gz"
    mine = as_user(load_settings().user).profiles.register(trace, name="alexnet")
    bobs = as_user("bob").profiles.register(trace, name="bobs")
    status, data = await api("GET", "profiles")
    assert status == 200 and [p["id"] for p in data["profiles"]] == [mine.id]
    assert data["profiles"][0]["name"] == "alexnet" and "path" not in data["profiles"][0]
    status, summary = await api("GET", f"profiles/{mine.id}/summary")
    assert status == 200 and summary["id"] == mine.id and summary["summary"] == mine.summary()
    status, data = await api("GET", f"profiles/{bobs.id}/summary")
    assert status == 403 and "bob" in data["error"]


async def test_a_browser_session_must_send_the_xsrf_token_to_change_anything(jp_fetch: Any, store_home: Path) -> None:
    """With the login cookie and no token header (a browser), POST needs X-XSRFToken: Jupyter's XSRF check."""
    from http.cookies import SimpleCookie

    from tornado.httpclient import HTTPClientError

    first = await jp_fetch("workbench", "api", "slices")  # token-authenticated: sets the login cookie
    cookies = SimpleCookie()
    for header in first.headers.get_list("Set-Cookie"):
        cookies.load(header)
    assert cookies, "no login cookie"
    xsrf = "5a1c" * 8  # what a page's `_xsrf` cookie holds (tornado's version-1 form: hex)
    jar = "; ".join([f"{k}={v.value}" for k, v in cookies.items()] + [f"_xsrf={xsrf}"])
    as_browser = {"Authorization": "", "Cookie": jar}
    before = table_rows(store_home, "leases")
    try:
        await jp_fetch("workbench", "api", "slices", method="POST", body=b'{"spec": "cpu"}', headers=as_browser)
        raise AssertionError("a POST without X-XSRFToken was accepted")
    except HTTPClientError as exc:
        assert exc.code == 403 and b"_xsrf" in exc.response.body
    assert table_rows(store_home, "leases") == before
    ok = await jp_fetch("workbench", "api", "slices", method="POST", body=b'{"spec": "cpu"}',
                        headers={**as_browser, "X-XSRFToken": xsrf})
    assert ok.code == 201


async def test_a_running_job_can_be_cancelled(api: Any, jp_root_dir: Path) -> None:
    (jp_root_dir / "sleepy.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n")
    status, job = await api("POST", "jobs", {"target": "sleepy.py", "slice": "cpu:1"})
    assert status == 201, job
    for _ in range(300):
        _, chunk = await api("GET", f"jobs/{job['id']}/logs")
        if "sleeping" in chunk["text"]:
            break
        await asyncio.sleep(0.1)
    status, cancelled = await api("POST", f"jobs/{job['id']}/cancel")
    assert status == 200 and cancelled["id"] == job["id"]
    for _ in range(300):
        _, job = await api("GET", f"jobs/{job['id']}")
        if job["state"] == "cancelled":
            break
        await asyncio.sleep(0.1)
    assert job["state"] == "cancelled", job


async def test_a_broken_configuration_is_503_with_the_reason(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_LEASE_TTL_S", "-5")
    status, data = await api("GET", "slices")
    assert status == 503 and data["reason"] == "unavailable"
    assert "WORKBENCH_LEASE_TTL_S" in data["error"]


async def test_a_missing_service_is_503_and_the_others_still_answer(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.jupyter.handlers as handlers

    monkeypatch.setattr(handlers, "service_available", lambda noun: noun != "kernels")
    status, data = await api("GET", "kernels")
    assert status == 503 and "workbench.kernels.service is missing" in data["error"]
    status, info = await api("GET", "")
    assert info["services"]["kernels"] is False
    status, _ = await api("GET", "slices")
    assert status == 200


async def test_the_server_sweeps_leases_on_a_timer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead notebook's slice comes back even when nobody requests another one."""
    from workbench import Workbench
    from workbench.jupyter.extension import WorkbenchHolder, _start_sweeps

    monkeypatch.setenv("WORKBENCH_SWEEP_INTERVAL_S", "0.2")
    wb = Workbench(home=tmp_path / "home", lease_ttl_s=0.3)
    holder = WorkbenchHolder(lambda: wb)
    lease = wb.slices.request("cpu")
    _start_sweeps(holder)
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if wb.slices.get(lease.id).state == "expired":
                break
        expired = wb.slices.get(lease.id)
        assert expired.state == "expired" and "not renewed within its TTL" in (expired.reason or "")
    finally:
        holder.close()
