"""Variants of a campaign step (docs/decisions/0052): pure functions, no I/O.

- ``spintax``: ``{a|b|c}`` groups in a template, parsed, counted and resolved;
- ``choice``: which variant, and which spintax words, a prospect gets, by a keyed hash;
- ``winner``: the rule that declares a variant the winner of its step, on replies.

This room sits below ``specs`` and ``store`` (both use it) and imports nothing of the
project: a choice made here must be the same in the importer, the claim and the
send activity, on every retry and replay.
"""
