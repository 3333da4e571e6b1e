"""The ledger's states are named once (mail.outcomes.LedgerState); the database's CHECK
constraint on ``sends.state``, as the migrations leave it, allows exactly those."""

from __future__ import annotations

import re

import asyncpg

from mail.outcomes import FINAL_STATES, OPEN_STATES, LedgerState
from store import ledger


async def allowed_states(conn: asyncpg.Connection, table: str, column: str) -> set[str]:
    """The values the one CHECK constraint on ``table.column`` lists, read from pg_constraint."""
    definitions = await conn.fetch(
        "SELECT pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c"
        " JOIN pg_class t ON t.oid = c.conrelid"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (c.conkey)"
        " WHERE c.contype = 'c' AND t.relname = $1 AND a.attname = $2",
        table, column,
    )
    assert len(definitions) == 1, definitions
    definition: str = definitions[0]["definition"]
    # CHECK ((state = ANY (ARRAY['queued'::text, 'sending'::text, ...])))
    assert definition.startswith(f"CHECK (({column} = ANY (ARRAY["), definition
    return set(re.findall(r"'([^']*)'::text", definition))


async def test_the_database_allows_exactly_the_ledger_states(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        allowed = await allowed_states(conn, "sends", "state")
    finally:
        await conn.close()
    assert allowed == {s.value for s in LedgerState}


def test_every_state_is_open_or_final_and_the_store_lists_them_alike() -> None:
    assert set(OPEN_STATES) | set(FINAL_STATES) == set(LedgerState)
    assert not set(OPEN_STATES) & set(FINAL_STATES)
    assert ledger.ALL_STATES == tuple(s.value for s in LedgerState)
