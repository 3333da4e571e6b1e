"""The variants schedule's activity (docs/decisions/0052): judge every winner rule of the
running campaigns on their matured sends, record the winners, and refresh the figures
per variant that Prometheus (and the Grafana panel per campaign) reads.

A decision is data written once (``steps.winner`` and its log row); the claim reads it
and gives every new prospect of the step the winner. Sends already made keep theirs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import structlog
from temporalio import activity

from activities.maintenance_models import VariantsInput, VariantsResult
from config.names import JUDGE_VARIANTS
from store import variant_stats, variants
from store.variants import RuleToJudge
from telemetry.metrics import VARIANT_FIGURES
from variants.winner import Arm, decide

log = structlog.get_logger(__name__)


class VariantJudge:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=JUDGE_VARIANTS)
    async def judge_variants(self, inp: VariantsInput) -> VariantsResult:
        rules = await variants.rules_to_judge(self._pool)
        result = VariantsResult(steps_judged=len(rules))
        sent_before = datetime.now(UTC) - inp.reply_window
        for rule in rules:
            winner = await self._judge(rule, sent_before, inp)
            if winner is not None:
                result.winners.append(f"{rule.campaign_id}:{rule.step}:{winner}")
        await self._refresh_figures()
        log.info("variants_judged", steps=result.steps_judged, winners=result.winners)
        return result

    async def _judge(self, rule: RuleToJudge, sent_before: datetime, inp: VariantsInput) -> str | None:
        found = await variant_stats.matured(self._pool, rule.campaign_id, rule.step, sent_before, rule.metric)
        arms = [Arm(name, *found.get(name, (0, 0))) for name in rule.variants]
        verdict = decide(arms, rule.min_sends, rule.confidence)
        if verdict.winner is None:
            return None
        figures = {
            "metric": rule.metric, "confidence": rule.confidence, "min_sends": rule.min_sends,
            "reply_window_seconds": inp.reply_window.total_seconds(), "sent_before": sent_before.isoformat(),
            "arms": {a.name: {"sends": a.sends, "answered": a.successes, "rate": round(a.rate, 5)}
                     for a in arms},
            "evidence": verdict.evidence, "threshold": verdict.threshold, "reason": verdict.reason,
        }
        if not await variants.record_winner(self._pool, rule.campaign_id, rule.step, verdict.winner, "rule",
                                            figures):
            return None  # an operator decided meanwhile: theirs stands
        log.info("variant_won", campaign_id=rule.campaign_id, step=rule.step, winner=verdict.winner,
                 reason=verdict.reason)
        return verdict.winner

    async def _refresh_figures(self) -> None:
        """The gauge holds only running and paused campaigns: ended ones drop out."""
        VARIANT_FIGURES.clear()
        for campaign_id in await variants.campaigns_with_variants(self._pool):
            for row in await variant_stats.variant_stats(self._pool, campaign_id):
                for figure in variant_stats.FIGURES:
                    VARIANT_FIGURES.labels(campaign=campaign_id, step=str(row["step"]),
                                           variant=row["variant"] or "-", figure=figure).set(row[figure])
