"""``outreach campaigns variants`` and what ``campaigns status --by-variant`` prints: the
figures per step variant and the operator's pick or reset of a winner (decision 0052)."""

from __future__ import annotations

from typing import Any

import click

from client.db_command import run_on_database
from client.output import echo
from store import variants


@click.command("variants")
@click.argument("campaign_id")
@click.option("--step", required=True, type=click.IntRange(min=1), help="The step whose winner to set.")
@click.option("--pick", "name", help="Give every new prospect of the step this variant.")
@click.option("--reset", is_flag=True, help="Undo the step's winner: weights and the rule apply again.")
def campaigns_variants(campaign_id: str, step: int, name: str | None, reset: bool) -> None:
    """Decide a step's winner by hand (--pick NAME) or undo a decision (--reset).
    Prospects already sent keep their variant and thread."""
    if (name is None) == (not reset):
        raise click.UsageError("give either --pick NAME or --reset")
    # PostgreSQL alone: the next claim of the step reads the decision.
    run_on_database(lambda pool: variants.pick_winner(pool, campaign_id, step, name))
    if reset:
        echo(f"campaign {campaign_id} step {step}: no winner; new prospects get the variants by weight")
    else:
        echo(f"campaign {campaign_id} step {step}: every new prospect gets variant {name!r}")


def variant_lines(rows: list[dict[str, Any]], winners: list[dict[str, Any]]) -> list[str]:
    """The table of ``status --by-variant``: a line per step variant (its replies by
    intent class at the end, as ``campaigns status`` shows them per step), then each
    decision. ``rate`` is the positive reply rate."""
    lines = [f"  {'step':>4} {'variant':<16} {'weight':>6} {'sent':>7} {'deliv.':>7} {'bounced':>7}"
             f" {'replied':>7} {'positive':>8} {'unsub.':>6} {'compl.':>6}  rate"]
    for r in rows:
        name = (r["variant"] or "-") + (" (retired)" if r["retired"] else "")
        weight = f"{r['weight']:g}" if r["weight"] is not None else "-"
        classes = ", ".join(f"{k} {v}" for k, v in r.get("reply_classes", {}).items() if v)
        lines.append(f"  {r['step']:>4} {name:<16} {weight:>6} {r['sent']:>7} {r['delivered']:>7}"
                     f" {r['hard_bounced']:>7} {r['replied']:>7} {r['positive_replied']:>8}"
                     f" {r['unsubscribed']:>6} {r['complained']:>6}  {r['positive_reply_rate']:.2%}"
                     + (f" [{classes}]" if classes else ""))
    return lines + [winner_line(w) for w in winners]


def winner_line(w: dict[str, Any]) -> str:
    rule = w["rule"]
    ruled = (f"rule {rule['metric']}, min_sends {rule['min_sends']}, confidence {rule['confidence']:g}"
             if rule else "no rule")
    if w["winner"] is None:
        return f"  step {w['step']}: no winner yet ({ruled})"
    figures = w["figures"] or {}
    why = f": {figures['reason']}" if figures.get("reason") else ""
    return (f"  step {w['step']}: winner {w['winner']!r} by {w['decided_by']} at {w['decided_at']}"
            f" ({ruled}){why}")
