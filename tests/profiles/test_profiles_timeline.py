"""The timeline's layout and its server-side level of detail (no browser: see the _browser tests)."""

from __future__ import annotations

import numpy as np
from profiles_helpers import TRACES, cpu, kernel

from workbench.profiles.profile import Profile
from workbench.profiles.table import open_table
from workbench.profiles.views import TimelineData, nesting_depths, timeline


def test_nesting_depths_follow_enclosure_per_lane() -> None:
    # lane 0: a [0,100] holds b [10,50] holds c [20,30]; d [60,90] is back at depth 1; e after a at 0
    # lane 1: f at the same start as lane 0's a, depth 0 (lanes do not nest into each other)
    start = np.array([0, 10, 20, 60, 120, 0, 10.0])
    end = np.array([100, 50, 30, 90, 130, 40, 20.0])
    key = np.array([0, 0, 0, 0, 0, 1, 1])
    assert nesting_depths(start, end, key).tolist() == [0, 1, 2, 1, 0, 0, 1]
    # equal starts: the longer one encloses the shorter
    assert nesting_depths(np.array([5.0, 5.0]), np.array([6.0, 9.0]), np.zeros(2)).tolist() == [1, 0]


def test_nested_cpu_ops_get_depth_lanes(write_trace) -> None:
    events = [cpu("step", 0, 100), cpu("forward", 5, 60), cpu("linear", 10, 20), cpu("backward", 70, 25),
              cpu("other_thread", 0, 50, tid=2), kernel("k", 20, 5)]
    t = open_table(write_trace(events), cache=False)
    fig = timeline(t.events, t.meta)
    labels = list(fig.yaxis.major_label_overrides.values())
    assert labels == ["GPU 0 stream 7", "pid 100 / tid 1", "↳ depth 1", "↳ depth 2", "pid 100 / tid 2"]
    detail = fig.select_one({"name": "wb-timeline-detail"}).data
    lane_of = dict(zip(detail["name"], detail["lane"], strict=True))
    assert [lane_of[n] for n in ("k", "step", "forward", "linear", "backward", "other_thread")] == [0, 1, 2, 3, 2, 4]


def test_server_side_window_gives_blocks_far_out_and_events_close_in() -> None:
    p = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False)
    data = TimelineData(p.events, p.meta)
    blocks, events = data.window(data.x0, data.x0 + data.span, width_px=1000, cap=2000)
    assert len(events["start"]) == 0 and 0 < len(blocks["start"]) and sum(blocks["events"]) == len(data)
    mid = data.x0 + data.span / 2
    blocks, events = data.window(mid, mid + data.span / 2000, width_px=1000, cap=2000)
    assert len(blocks["start"]) == 0 and 0 < len(events["start"]) <= 2000
    visible = (data.end >= mid) & (data.start <= mid + data.span / 2000)
    assert len(events["start"]) == int(visible.sum()), "every event in view, and only those"
    assert set(events["name"]) <= set(data.names)


def test_large_timeline_sends_only_the_view() -> None:
    p = Profile.open(TRACES / "diff_control_a100.json.gz", cache=False)
    served = p.timeline(browser_max_events=1000)
    assert served.tags[0]["served"] and served.select_one({"name": "wb-timeline-full"}) is None
    static = p.timeline()
    assert not static.tags[0]["served"]
    assert len(static.select_one({"name": "wb-timeline-full"}).data["start"]) == static.tags[0]["events"] == served.tags[0]["events"]
    assert static.tags[0]["events"] > 70_000
