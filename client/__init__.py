"""The Python client (``client.api.OutreachClient``) and the ``outreach`` CLI over it.

Errors::

    ClientError                 a request that cannot be carried out as asked
     └── InvalidState           e.g. starting a cancelled campaign
"""


class ClientError(Exception):
    """A request that cannot be carried out as asked."""


class InvalidState(ClientError):
    """The campaign or mailbox is in a state that does not allow the request."""
