"""The keep-alive rule every face follows: renew the live leases shown, a third of a TTL after the
last renewal, unless auto-renew is off there; a closed face renews nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any


def test_a_face_renews_what_it_shows_a_third_of_a_ttl_after_the_last_renewal(bench: Any, clock: Any, mixed_fleet: Any) -> None:
    wb = bench(fleet=mixed_fleet, lease_ttl_s=60)
    lease = wb.slices.request("cpu:1")
    first_expiry = lease.expires_at
    assert lease.renew_at == first_expiry - dt.timedelta(seconds=40)
    face = wb.slices.keep_alive()
    clock.advance(19)
    assert face.beat(wb.slices.list()) == []  # not due yet
    clock.advance(1)
    renewed = face.beat(wb.slices.list())
    assert [r.id for r in renewed] == [lease.id]
    assert lease.refresh().expires_at > first_expiry
    # beats keep it alive well past its first TTL
    for _ in range(6):
        clock.advance(20)
        face.beat(wb.slices.list())
    wb.slices.sweep()
    assert lease.refresh().state == "active"


def test_auto_renew_off_and_a_closed_face_let_the_lease_expire(bench: Any, clock: Any, mixed_fleet: Any) -> None:
    wb = bench(fleet=mixed_fleet, lease_ttl_s=60)
    kept, dropped = wb.slices.request("cpu:1"), wb.slices.request("cpu:1")
    face = wb.slices.keep_alive()
    face.set_auto_renew(dropped.id, False)
    assert face.auto_renew(kept.id) and not face.auto_renew(dropped.id)
    clock.advance(30)
    assert [r.id for r in face.beat(wb.slices.list())] == [kept.id]
    face.close()
    clock.advance(30)
    assert face.beat(wb.slices.list()) == []
    clock.advance(31)
    wb.slices.sweep()
    assert dropped.refresh().state == "expired"
    assert kept.refresh().state == "expired"  # 61 s after the face's last renewal


def test_a_beat_skips_what_ended_and_what_is_not_live(bench: Any, clock: Any, mixed_fleet: Any) -> None:
    wb = bench(fleet=mixed_fleet, lease_ttl_s=60)
    lease = wb.slices.request("cpu:1")
    shown = wb.slices.list()
    lease.release()
    face = wb.slices.keep_alive()
    clock.advance(30)
    assert face.beat(shown) == []  # shown before it ended: renewing it is refused, and skipped
    assert lease.refresh().renew_at is None
