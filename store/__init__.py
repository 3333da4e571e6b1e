"""PostgreSQL: schema migrations and the queries over campaigns, mailboxes and the send ledger.

Errors::

    StoreError
     ├── UnknownRecord (LookupError)   an id that is not in the database
     └── SuppressionError (ValueError) store.suppressions: not an address or @domain,
                                       a bad scope, an entry not listed
"""


class StoreError(Exception):
    """Something the database could not do for us."""


class UnknownRecord(StoreError, LookupError):
    """An id (campaign, mailbox, prospect) that the database does not hold."""
