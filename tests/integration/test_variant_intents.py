"""Positive replies per variant by intent class (issues 24 and 25, decision 0052), against
the real PostgreSQL: two variants, replies of every kind recorded for each as the inbox
poll records them (store/inbound.py), and a reply from before migration 0016 (no intent)
counted by the old rule. The figures, the positive rate, the replies per class and what
the winner rule judges all follow one definition."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from inbox.intent import IntentClass
from specs.loading import load_campaign_file
from store import inbound
from store.campaigns import campaign_status
from store.importer import create_campaign
from store.inbound import Inbound, Match
from store.variant_stats import INTENTS, POSITIVE_INTENTS, matured, variant_stats
from tests.factories import add_mailbox
from tests.integration.test_variants_update import A, B, claim, write

_UIDS = itertools.count(1)


async def message(db: asyncpg.Pool, campaign_id: str, prospect: int, kind: str, intent: str | None,
                  *, proven: bool = True, mailbox: str = "mb-u") -> None:
    """One inbox message matched to the prospect's step-1 send, recorded as the poll
    records it (inbox/poll.py); ``intent`` None is what a row from before 0016 holds."""
    found = Inbound(mailbox, "INBOX", 1, next(_UIDS), None, kind, None,
                    Match(campaign_id, 1, prospect, f"{prospect}@example.com", "thread"), "", None,
                    proven=proven, intent=intent, intent_confidence=0.9 if intent else None)
    async with db.acquire() as conn:
        assert await inbound.record(conn, found) is not None


def test_the_store_knows_the_readers_intent_classes() -> None:
    """store/ cannot import inbox/: its list of classes must be the reader's, in order."""
    assert INTENTS == tuple(c.value for c in IntentClass)
    assert set(POSITIVE_INTENTS) == {"interested", "meeting", "question"}


async def test_positive_replies_per_variant_are_the_positive_intents(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    await db.execute("TRUNCATE inbound_messages")
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B, n=60)))
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", created.id)
    assert len(await claim(db, created.id, 60)) == 60
    await db.execute("UPDATE sends SET state = 'sent', attempts = 1, sent_at = now() - interval '5 days'"
                     " WHERE campaign_id = $1", created.id)
    rows = await db.fetch("SELECT prospect_id, variant FROM sends WHERE campaign_id = $1", created.id)
    of = {v: [r["prospect_id"] for r in rows if r["variant"] == v] for v in ("a", "b")}
    assert len(of["a"]) >= 10 and len(of["b"]) >= 10  # 60 prospects, weights 1:1
    a, b = of["a"], of["b"]

    # Variant a: three positive intents (a prospect writing twice, or in two positive
    # classes, counts once), the old rule for a reply without intent, and the answers
    # that are not positive.
    await message(db, created.id, a[0], "reply", "interested")
    await message(db, created.id, a[0], "reply", "interested")
    await message(db, created.id, a[1], "reply", "meeting")
    await message(db, created.id, a[2], "reply", "question")
    await message(db, created.id, a[2], "reply", "interested")
    await message(db, created.id, a[3], "reply", None)  # recorded before migration 0016
    await message(db, created.id, a[4], "reply", "referral")
    await message(db, created.id, a[5], "reply", "not_interested")
    await message(db, created.id, a[6], "auto_reply", "out_of_office")
    await message(db, created.id, a[7], "unsubscribe", "unsubscribe")
    await message(db, created.id, a[8], "reply", "interested", proven=False)  # short of proof: no figure
    # Variant b: one positive reply; an automatic reply is never positive, whatever its
    # words, with an intent or (before 0016) without.
    await message(db, created.id, b[0], "reply", "interested")
    await message(db, created.id, b[1], "reply", "wrong_person")
    await message(db, created.id, b[2], "reply", "out_of_office")  # written by hand: an absence
    await message(db, created.id, b[3], "reply", "other")
    await message(db, created.id, b[4], "auto_reply", "interested")
    await message(db, created.id, b[5], "auto_reply", None)  # recorded before migration 0016
    await message(db, created.id, b[6], "bounce", None)
    await message(db, created.id, b[7], "complaint", None)

    figures = {r["variant"]: r for r in await variant_stats(db, created.id)}
    fa, fb = figures["a"], figures["b"]
    assert (fa["delivered"], fb["delivered"]) == (len(a), len(b))
    assert (fa["replied"], fa["positive_replied"], fa["complained"]) == (8, 4, 0)
    assert (fb["replied"], fb["positive_replied"], fb["complained"]) == (6, 1, 1)
    assert fa["positive_reply_rate"] == round(4 / len(a), 4)
    assert fb["positive_reply_rate"] == round(1 / len(b), 4)
    assert fa["reply_rate"] == round(8 / len(a), 4)
    zero = dict.fromkeys(INTENTS, 0)
    assert fa["reply_classes"] == {**zero, "interested": 2, "meeting": 1, "question": 1, "referral": 1,
                                   "not_interested": 1, "out_of_office": 1, "unsubscribe": 1}
    assert list(fa["reply_classes"]) == list(INTENTS)
    assert fb["reply_classes"] == {**zero, "interested": 2, "wrong_person": 1, "out_of_office": 1,
                                   "other": 1}

    # What the winner rule judges: the same answers, on the sends old enough.
    old_enough = datetime.now(UTC) - timedelta(days=3)
    assert await matured(db, created.id, 1, old_enough, "positive_reply_rate") == {"a": (len(a), 4),
                                                                                    "b": (len(b), 1)}
    assert await matured(db, created.id, 1, old_enough, "reply_rate") == {"a": (len(a), 8), "b": (len(b), 6)}
    assert await matured(db, created.id, 1, datetime.now(UTC) - timedelta(days=6),
                         "positive_reply_rate") == {}

    # The step's counts in `campaigns status` are messages, proven or not; per variant,
    # proven prospects. They differ here by exactly a[0]'s second message and a[8]'s
    # unproven one, both `interested`.
    status = await campaign_status(db, created.id)
    by_step = status["reply_classes"][0]["classes"]
    for intent in INTENTS:
        extra = 2 if intent == "interested" else 0
        assert by_step.get(intent, 0) == fa["reply_classes"][intent] + fb["reply_classes"][intent] + extra


async def test_a_variant_without_replies_shows_every_class_at_zero(db: asyncpg.Pool, tmp_path: Path) -> None:
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B, n=4)))
    for row in await variant_stats(db, created.id):
        assert row["reply_classes"] == dict.fromkeys(INTENTS, 0)
        assert row["positive_replied"] == row["positive_reply_rate"] == 0
