"""Sending limits: pure decisions over time and counts, and their shared state in Redis.

Errors::

    LimitStoreUnavailable (ConnectionError)   Redis cannot be reached: no send may start
"""


class LimitStoreUnavailable(ConnectionError):
    """The shared limit state cannot be read or written; limits fail closed."""
