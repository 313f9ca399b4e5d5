"""How fast a change in the store reaches the browser on the job queue page, with 1,000 jobs.

Starts `workbench serve` on a fresh data directory holding N synthetic jobs (rows written to the
store directly: the point is the page, not running 1,000 jobs), opens the job queue in Debian's
chromium, then repeatedly changes one visible job's state (a Tabulator `patch`) or adds a job (a
`stream`) in the store and times until the browser's table shows it. The same run measures a
10-job queue as the baseline, so the ratio says what 1,000 rows cost.

    .venv/bin/python benchmarks/dashboard.py [--jobs 1000] [--repeats 15]

Target (issue 8): an update reaches the browser in <= 1 s with 1,000 jobs.

It also times page switches on the 1,000-job server (issue 19): a click on a page in the
navigation until that page's content shows, switched in place within the open session (how the
dashboard navigates now), against loading the same page as a new document (how every link
navigated before: the baseline, measured in the same run).

Target (issue 19): a page switch <= 1 s after the first load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
STATES = ("succeeded", "failed", "cancelled", "running", "queued")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_jobs(home: Path, n: int) -> tuple[object, list[str]]:
    """N job rows, newest last; returns the store and the ids."""
    from workbench.config import load_settings
    from workbench.store import Store
    from workbench.store.models.jobs import JobRow

    store = Store(load_settings(home=home).database)
    now = dt.datetime.now(dt.UTC)
    ids = [f"job-bench{i:07d}" for i in range(n)]
    with store.session() as s:
        for i, job_id in enumerate(ids):
            created = now - dt.timedelta(seconds=n - i)
            s.add(JobRow(id=job_id, name=f"sweep-{i % 37}", owner=f"user{i % 7}", project="default", kind="script",
                         target="train.py", framework="torch", slice_spec="cpu", state=STATES[i % len(STATES)],
                         created_at=created, started_at=created, ended_at=None, driver=None))
    return store, ids


def set_state(store: object, job_id: str, state: str) -> None:
    from workbench.store.models.jobs import JobRow

    with store.session() as s:  # type: ignore[attr-defined]
        s.get(JobRow, job_id).state = state


def add_job(store: object, job_id: str) -> None:
    from workbench.store.models.jobs import JobRow

    now = dt.datetime.now(dt.UTC)
    with store.session() as s:  # type: ignore[attr-defined]
        s.add(JobRow(id=job_id, name="new", owner="bench", project="default", kind="script", target="x.py",
                     framework=None, slice_spec="cpu", state="queued", created_at=now, driver=None))


SWITCH_PAGES = {"jobs": ".wb-jobs-table", "profiles": ".wb-profiles-table", "kernels": ".wb-roofline",
                "fleet": ".wb-dev"}


def switch_times(page: object, url: str, rounds: int) -> dict[str, list[float]]:
    """Seconds from asking for a page to seeing its content: by a click in place, and by a new load."""
    results: dict[str, list[float]] = {"first_visit_s": [], "in_place_s": [], "reload_s": []}
    for round_ in range(rounds):
        for name, content in SWITCH_PAGES.items():
            t0 = time.perf_counter()
            page.locator(f".wb-nav a[data-page={name}]").click()  # type: ignore[attr-defined]
            page.locator(f".wb-nav a.active[data-page={name}]").wait_for(timeout=30_000)  # type: ignore[attr-defined]
            page.locator(content).first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
            # the first round builds each page in the tab; later rounds show the kept page again
            results["first_visit_s" if round_ == 0 else "in_place_s"].append(time.perf_counter() - t0)
    # after the in-place rounds: each load opens a new session (the tab's kept pages are gone)
    for _ in range(rounds):
        for name, content in SWITCH_PAGES.items():
            t0 = time.perf_counter()
            page.goto(f"{url}?page={name}")  # type: ignore[attr-defined]
            page.locator(content).first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
            results["reload_s"].append(time.perf_counter() - t0)
    return results


def measure(n: int, repeats: int, browser: object, switch_rounds: int = 0) -> dict[str, list[float]]:
    home = Path(tempfile.mkdtemp(prefix=f"wb-dash-bench-{n}-"))
    store, ids = seed_jobs(home, n)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")} | {"WORKBENCH_HOME": str(home)}
    server = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(port), "--no-show"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, list[float]] = {"patch_s": [], "stream_s": [], "first_paint_s": []}
    try:
        page = browser.new_page(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while True:
            try:
                t0 = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/?page=jobs")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        newest = ids[-1]
        page.locator(".wb-jobs-table .tabulator-row", has_text=newest).wait_for(timeout=60_000)
        results["first_paint_s"].append(time.perf_counter() - t0)
        row = page.locator(".wb-jobs-table .tabulator-row", has_text=newest)
        for i in range(repeats):
            state = ("preempted", "succeeded")[i % 2]
            t0 = time.perf_counter()
            set_state(store, newest, state)
            row.filter(has_text=state).wait_for(timeout=10_000)
            results["patch_s"].append(time.perf_counter() - t0)
            page.wait_for_timeout(150)  # let the tick land at a random phase of the refresh period
        for i in range(max(3, repeats // 3)):
            job_id = f"job-new{n}x{i:04d}"
            t0 = time.perf_counter()
            add_job(store, job_id)
            page.locator(".wb-jobs-table .tabulator-row", has_text=job_id).wait_for(timeout=10_000)
            results["stream_s"].append(time.perf_counter() - t0)
            page.wait_for_timeout(150)
        if switch_rounds:
            results |= switch_times(page, f"http://127.0.0.1:{port}/", switch_rounds)
        page.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
        store.close()  # type: ignore[attr-defined]
    return results


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values) * 1000:6.0f} ms   p95 {p95 * 1000:6.0f} ms   max {max(values) * 1000:6.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--baseline-jobs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--switch-rounds", type=int, default=5,
                        help="rounds over the four pages, each way (the first round in place is the first visits)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit("Debian's chromium is needed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        base = measure(args.baseline_jobs, args.repeats, browser)
        big = measure(args.jobs, args.repeats, browser, args.switch_rounds)
        browser.close()
    print(f"job queue page, store change -> visible in chromium (refresh period 300 ms, {args.repeats} repeats)")
    for label, res in ((f"{args.baseline_jobs:>5} jobs", base), (f"{args.jobs:>5} jobs", big)):
        print(f"{label}  patch  {summary(res['patch_s'])}")
        print(f"{label}  stream {summary(res['stream_s'])}")
        print(f"{label}  first paint of the page {res['first_paint_s'][0] * 1000:.0f} ms")
    ratio = statistics.median(big["patch_s"]) / statistics.median(base["patch_s"])
    worst = max(big["patch_s"] + big["stream_s"])
    print(f"ratio {args.jobs} / {args.baseline_jobs} jobs (median patch latency): {ratio:.2f}x")
    print(f"target: every update <= 1 s with {args.jobs} jobs: {'met' if worst <= 1.0 else 'NOT met'} "
          f"(worst {worst * 1000:.0f} ms)")
    if args.switch_rounds:
        pages = ", ".join(SWITCH_PAGES)
        print(f"page switches with {args.jobs} jobs ({pages}; {args.switch_rounds} rounds), click -> content shown")
        print(f"  in place, page seen before in the tab (now)  {summary(big['in_place_s'])}")
        print(f"  in place, first visit in the tab (now)       {summary(big['first_visit_s'])}")
        print(f"  new page load (before)                       {summary(big['reload_s'])}")
        ratio = statistics.median(big["reload_s"]) / statistics.median(big["in_place_s"])
        first = statistics.median(big["reload_s"]) / statistics.median(big["first_visit_s"])
        worst = max(big["in_place_s"])
        print(f"ratio new load / in place (median): {ratio:.2f}x seen before, {first:.2f}x first visit")
        print(f"target: a page switch <= 1 s after the first load: {'met' if worst <= 1.0 else 'NOT met'} "
              f"(worst {worst * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
