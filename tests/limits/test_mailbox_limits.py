"""Per mailbox: daily cap (local day and rolling 24 h), pause, spacing, rebuild after loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from limits.store import LimitStore, Verdict
from tests.limits.conftest import DAY, NOW, admit_request, ready


async def test_missing_state_asks_for_a_rebuild_before_any_send(store: LimitStore) -> None:
    assert (await store.admit(admit_request("c:1:1"))).verdict is Verdict.REBUILD


async def test_daily_cap_holds_and_frees_at_the_local_midnight(store: LimitStore) -> None:
    await ready(store)
    verdicts = [(await store.admit(admit_request(f"c:1:{i}", cap=3))).verdict for i in range(4)]
    assert verdicts == [Verdict.GO, Verdict.GO, Verdict.GO, Verdict.WAIT]
    full = await store.admit(admit_request("c:1:9", cap=3))
    assert full.at == DAY[1] and "daily cap" in full.reason


async def test_the_same_send_reserves_only_once(store: LimitStore) -> None:
    await ready(store)
    for _ in range(5):
        assert (await store.admit(admit_request("c:1:1", cap=1))).verdict is Verdict.GO
    assert (await store.admit(admit_request("c:1:2", cap=1))).verdict is Verdict.WAIT


async def test_rolling_24_hours_never_exceed_the_cap_across_midnight(store: LimitStore) -> None:
    await ready(store)
    late = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    for i in range(2):
        assert (await store.admit(admit_request(f"c:1:{i}", late, cap=2))).verdict is Verdict.GO
    next_day = (DAY[1], DAY[1] + timedelta(days=1))
    early = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    result = await store.admit(admit_request("c:1:5", early, day=next_day, cap=2))
    assert result.verdict is Verdict.WAIT
    assert result.at == late + timedelta(days=1)


async def test_pause_stops_every_admission_until_resumed(store: LimitStore) -> None:
    await ready(store)
    await store.set_paused("mb", True, "operator")
    paused = await store.admit(admit_request("c:1:1"))
    assert paused.verdict is Verdict.WAIT and "operator" in paused.reason
    await store.set_paused("mb", False, "")
    assert (await store.admit(admit_request("c:1:1"))).verdict is Verdict.GO


async def test_rebuild_counts_the_ledgers_sends_and_keeps_a_newer_pause(store: LimitStore) -> None:
    await store.set_paused("mb", True, "newer than the ledger read")
    await store.rebuild_mailbox("mb", paused=False, reason="", sends=[("c:1:1", NOW), ("c:1:2", NOW)])
    assert (await store.admit(admit_request("c:1:3", cap=3))).verdict is Verdict.WAIT
    await store.set_paused("mb", False, "")
    assert (await store.admit(admit_request("c:1:3", cap=3))).verdict is Verdict.GO
    assert (await store.admit(admit_request("c:1:4", cap=3))).verdict is Verdict.WAIT


async def test_sends_of_a_mailbox_are_spaced_by_the_gap(store: LimitStore) -> None:
    await ready(store)
    gap = timedelta(minutes=3)
    first = await store.admit(admit_request("c:1:1", spacing_gap=gap))
    second = await store.admit(admit_request("c:1:2", spacing_gap=gap))
    assert first.at == NOW
    assert second.verdict is Verdict.GO and second.at == NOW + gap


async def test_a_slot_beyond_the_horizon_is_not_reserved(store: LimitStore) -> None:
    await ready(store)
    gap = timedelta(minutes=30)
    await store.admit(admit_request("c:1:1", spacing_gap=gap))
    later = await store.admit(admit_request("c:1:2", spacing_gap=gap))
    assert later.verdict is Verdict.WAIT and later.at == NOW + gap
    # Nothing was reserved for it: when its time comes it goes at once.
    assert (await store.admit(admit_request("c:1:2", NOW + gap))).at == NOW + gap


async def test_a_reservation_from_an_earlier_day_must_fit_todays_cap(store: LimitStore) -> None:
    """A send reserved yesterday and not sent (its worker died, it went back to the
    queue) is one of today's sends when it goes today, not one beyond today's cap."""
    await ready(store)
    late = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert (await store.admit(admit_request("c:1:1", late, cap=2))).verdict is Verdict.GO
    next_day = (DAY[1], DAY[1] + timedelta(days=1))
    tomorrow = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # past the rolling 24 h of "late"
    for i in (2, 3):
        assert (await store.admit(admit_request(f"c:1:{i}", tomorrow, day=next_day, cap=2))).verdict \
            is Verdict.GO
    held_over = await store.admit(admit_request("c:1:1", tomorrow, day=next_day, cap=2))
    assert held_over.verdict is Verdict.WAIT and "daily cap" in held_over.reason
    # Within the same day a held reservation still goes again without a second slot.
    assert (await store.admit(admit_request("c:1:2", tomorrow, day=next_day, cap=2))).verdict \
        is Verdict.GO


async def test_a_released_day_slot_goes_to_the_next_send(store: LimitStore) -> None:
    """A send that went back to the queue unsent gives its place back: the mailbox
    still sends exactly its cap today."""
    await ready(store)
    for i in (1, 2):
        assert (await store.admit(admit_request(f"c:1:{i}", cap=2))).verdict is Verdict.GO
    assert (await store.admit(admit_request("c:1:3", cap=2))).verdict is Verdict.WAIT
    await store.release_day("mb", "c:1:1")
    assert (await store.admit(admit_request("c:1:3", cap=2))).verdict is Verdict.GO
    # The released send must now fit the cap like any other.
    assert (await store.admit(admit_request("c:1:1", cap=2))).verdict is Verdict.WAIT


async def test_a_retry_keeps_its_day_place_but_takes_its_own_spacing_and_provider_slot(
    store: LimitStore,
) -> None:
    """Every SMTP transaction has its own place (decision 0042): a send asked again (a
    retry, or one back from the queue) does not count twice against the cap, but goes
    only after the mailbox's spacing and into a provider slot of its own."""
    await ready(store)
    gap = timedelta(minutes=3)
    first = await store.admit(admit_request("c:1:1", cap=2, spacing_gap=gap))
    retry = await store.admit(admit_request("c:1:1", cap=2, spacing_gap=gap))
    assert first.at == NOW and retry.verdict is Verdict.GO and retry.at == NOW + gap
    assert retry.reservation != first.reservation
    # The next send comes a gap after the retry; the cap still has room for it (2).
    other = await store.admit(admit_request("c:1:2", cap=2, spacing_gap=gap))
    assert other.verdict is Verdict.GO and other.at == NOW + 2 * gap
    assert (await store.admit(admit_request("c:1:3", cap=2))).verdict is Verdict.WAIT


async def test_a_retry_at_a_full_provider_minute_waits_for_the_next_slot(store: LimitStore) -> None:
    await ready(store)
    window = timedelta(seconds=60)
    for i in range(3):
        await store.admit(admit_request(f"c:1:{i}", provider_limit=3, provider_window=window))
    retry = await store.admit(admit_request("c:1:0", provider_limit=3, provider_window=window))
    assert retry.verdict is Verdict.GO and retry.at == NOW + window
