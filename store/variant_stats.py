"""Figures per step variant (docs/decisions/0052), counted from the ledger and
``inbound_messages`` alone, so they reconcile with both exactly:

- sent: sends with at least one SMTP transaction that ended (sent, hard_bounced,
  failed, unknown); delivered: ``sent`` in the ledger (accepted, no DSN since);
- hard_bounced: ``hard_bounced`` in the ledger (at RCPT/DATA, or by a DSN later);
- replied: prospects with a proven inbound message on the send of class reply,
  auto_reply or unsubscribe (an answer of any kind); positive_replied: of class reply
  (a person wrote it: neither opt-out by mail nor auto-reply) with the intent
  ``interested``, ``meeting`` or ``question`` (inbox/intent.py, decision 0053), or with
  no intent (recorded before migration 0016: the class alone decides, as it did then);
  complained: of class complaint;
- reply_classes: per intent class, prospects with a proven message of that class on the
  send (every class of ``INTENTS``, zeros included; messages without an intent in none);
- unsubscribed: prospects now ``unsubscribed`` (by link or by mail), counted on the
  last send they were delivered.

A prospect counts once per send, however many messages it wrote. The figures last as
long as the ledger keeps the sends (retention deletes a finished campaign's, decision 0010).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

REPLIED = ("reply", "auto_reply", "unsubscribe")
# A positive reply: of class reply and one of these intents, or no intent at all (a
# message recorded before intents existed). Not referral: it says whom to write to, not
# that this person wants what the text offers (decision 0052).
POSITIVE_INTENTS = ("interested", "meeting", "question")
# The intent classes, in the order they are shown: inbox/intent.py IntentClass (which
# store/ does not import) and the CHECK of migration 0016.
INTENTS = ("interested", "meeting", "question", "not_interested", "unsubscribe", "wrong_person",
           "referral", "out_of_office", "other")
# What each winner metric counts as an answer, on ``inbound_messages i``: parameter $3
# is REPLIED (reply_rate) or POSITIVE_INTENTS (positive_reply_rate) in both queries.
_POSITIVE = "i.class = 'reply' AND (i.intent IS NULL OR i.intent = ANY($3::text[]))"
_ANSWERED = {"reply_rate": "i.class = ANY($3::text[])", "positive_reply_rate": _POSITIVE}
FIGURES = ("sent", "delivered", "hard_bounced", "replied", "positive_replied", "unsubscribed", "complained")

_STATS = f"""
WITH known AS (
    SELECT step, name AS variant, position, weight, retired_at FROM step_variants WHERE campaign_id = $1
),
ledger AS (
    SELECT step, variant,
           count(*) FILTER (WHERE attempts > 0 AND state IN ('sent', 'hard_bounced', 'failed', 'unknown'))
               AS sent,
           count(*) FILTER (WHERE state = 'sent') AS delivered,
           count(*) FILTER (WHERE state = 'hard_bounced') AS hard_bounced
    FROM sends WHERE campaign_id = $1 GROUP BY step, variant
),
answers AS (
    SELECT s.step, s.variant,
           count(DISTINCT i.prospect_id) FILTER (WHERE i.class = ANY($2::text[])) AS replied,
           count(DISTINCT i.prospect_id) FILTER (WHERE {_POSITIVE}) AS positive_replied,
           count(DISTINCT i.prospect_id) FILTER (WHERE i.class = 'complaint') AS complained
    FROM inbound_messages i
    JOIN sends s ON s.campaign_id = i.campaign_id AND s.step = i.step AND s.prospect_id = i.prospect_id
    WHERE i.campaign_id = $1 AND i.proven GROUP BY s.step, s.variant
),
classes AS (
    SELECT step, variant, jsonb_object_agg(intent, n) AS reply_classes FROM (
        SELECT s.step, s.variant, i.intent, count(DISTINCT i.prospect_id) AS n
        FROM inbound_messages i
        JOIN sends s ON s.campaign_id = i.campaign_id AND s.step = i.step AND s.prospect_id = i.prospect_id
        WHERE i.campaign_id = $1 AND i.proven AND i.intent IS NOT NULL GROUP BY s.step, s.variant, i.intent
    ) per_intent GROUP BY step, variant
),
unsubscribed AS (
    -- Each unsubscribed prospect's last delivered send, by its key (one probe per step).
    SELECT last.step, last.variant, count(*) AS unsubscribed
    FROM prospects p CROSS JOIN LATERAL (
        SELECT e.step, e.variant FROM generate_series(
            (SELECT count(*) FROM steps WHERE campaign_id = $1)::int, 1, -1) k
        JOIN sends e ON e.campaign_id = $1 AND e.step = k AND e.prospect_id = p.id
        WHERE e.state IN ('sent', 'hard_bounced') LIMIT 1) last
    WHERE p.campaign_id = $1 AND p.status = 'unsubscribed' GROUP BY last.step, last.variant
)
SELECT k.step, k.variant, known.weight, known.retired_at, coalesce(known.position, -1) AS position,
       coalesce(l.sent, 0) AS sent, coalesce(l.delivered, 0) AS delivered,
       coalesce(l.hard_bounced, 0) AS hard_bounced, coalesce(a.replied, 0) AS replied,
       coalesce(a.positive_replied, 0) AS positive_replied, coalesce(u.unsubscribed, 0) AS unsubscribed,
       coalesce(a.complained, 0) AS complained, c.reply_classes
FROM (SELECT step, variant FROM known UNION SELECT step, variant FROM ledger) k
LEFT JOIN known USING (step, variant) LEFT JOIN ledger l USING (step, variant)
LEFT JOIN answers a USING (step, variant) LEFT JOIN unsubscribed u USING (step, variant)
LEFT JOIN classes c USING (step, variant)
ORDER BY k.step, position, k.variant
"""


async def variant_stats(pool: asyncpg.Pool, campaign_id: str) -> list[dict[str, Any]]:
    """One row per step and variant (every variant the step has or had): its weight,
    whether it is retired, the figures above, with reply rates over delivered, and the
    replies by intent class."""
    rows = await pool.fetch(_STATS, campaign_id, list(REPLIED), list(POSITIVE_INTENTS))
    return [_row(r) for r in rows]


def _row(r: asyncpg.Record) -> dict[str, Any]:
    delivered = r["delivered"]
    return {
        "step": r["step"], "variant": r["variant"], "weight": r["weight"],
        "retired": r["retired_at"] is not None,
        **{f: r[f] for f in FIGURES},
        "reply_rate": round(r["replied"] / delivered, 4) if delivered else 0.0,
        "positive_reply_rate": round(r["positive_replied"] / delivered, 4) if delivered else 0.0,
        "reply_classes": {k: (r["reply_classes"] or {}).get(k, 0) for k in INTENTS},
    }


async def matured(
    pool: asyncpg.Pool, campaign_id: str, step: int, sent_before: datetime, metric: str,
) -> dict[str, tuple[int, int]]:
    """Per variant of the step: (delivered sends sent before ``sent_before``, how many of
    them drew an answer the metric counts, as ``variant_stats`` counts replied and
    positive_replied): what the winner rule may judge."""
    answers = POSITIVE_INTENTS if metric == "positive_reply_rate" else REPLIED
    rows = await pool.fetch(
        "SELECT s.variant, count(*) AS sends, count(*) FILTER (WHERE EXISTS ("
        "   SELECT 1 FROM inbound_messages i WHERE i.prospect_id = s.prospect_id"
        "   AND i.campaign_id = s.campaign_id AND i.step = s.step AND i.proven"
        f"   AND {_ANSWERED[metric]})) AS answered"
        " FROM sends s WHERE s.campaign_id = $1 AND s.step = $2 AND s.state = 'sent'"
        " AND s.sent_at <= $4 GROUP BY s.variant",
        campaign_id, step, list(answers), sent_before,
    )
    return {r["variant"]: (r["sends"], r["answered"]) for r in rows}


async def step_winners(pool: asyncpg.Pool, campaign_id: str) -> list[dict[str, Any]]:
    """Per step with a rule or a decision: the rule, the winner, by whom, when, its figures."""
    rows = await pool.fetch(
        "SELECT step, winner_metric, winner_min_sends, winner_confidence, winner, winner_by, winner_at,"
        " winner_figures FROM steps WHERE campaign_id = $1"
        " AND (winner_metric IS NOT NULL OR winner IS NOT NULL) ORDER BY step",
        campaign_id,
    )
    return [
        {"step": r["step"],
         "rule": {"metric": r["winner_metric"], "min_sends": r["winner_min_sends"],
                  "confidence": r["winner_confidence"]} if r["winner_metric"] else None,
         "winner": r["winner"], "decided_by": r["winner_by"],
         "decided_at": r["winner_at"].isoformat() if r["winner_at"] else None,
         "figures": r["winner_figures"]}
        for r in rows
    ]
