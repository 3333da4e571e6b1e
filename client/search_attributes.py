"""The search attributes of outreach on a Temporal namespace: register them, check them.

Registration is required (docs/decisions/0014): a step workflow that upserts an
unregistered attribute fails its workflow task and stalls, so `outreach worker`
checks first and refuses to start without them. `outreach dev` registers them
when it starts the dev server; on a real cluster `outreach search-attributes
register` does (idempotent).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from config.names import SEARCH_ATTRIBUTES

_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


# The dynamic config every dev server of the project runs with (docs/production.md says
# how to set the same on a cluster): activities a worker's workflow task schedules on its
# own queue come back in the task's reply, without the matching service (decision 0041).
DEV_DYNAMIC_CONFIG = {"system.enableActivityEagerExecution": "true"}


def dev_server_flags() -> list[str]:
    """What ``temporal server start-dev`` needs for outreach: ``--search-attribute
    Name=Type`` for each, and the dynamic config above."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type]}"]
    return flags + dynamic_config_flags()


def dynamic_config_flags() -> list[str]:
    """``--dynamic-config-value name=value`` for DEV_DYNAMIC_CONFIG."""
    return [flag for name, value in DEV_DYNAMIC_CONFIG.items()
            for flag in ("--dynamic-config-value", f"{name}={value}")]


async def missing_search_attributes(client: Client, namespace: str) -> list[str]:
    """The names of outreach's attributes not registered on ``namespace``."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return [k.name for k in SEARCH_ATTRIBUTES if k.name not in listed.custom_attributes]


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the missing attributes on ``namespace``; return the names added."""
    missing = await missing_search_attributes(client, namespace)
    if not missing:
        return []
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={
            k.name: IndexedValueType.ValueType(k.indexed_value_type.value)
            for k in SEARCH_ATTRIBUTES if k.name in missing
        },
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.ALREADY_EXISTS:  # another process registered them first
            raise
    return missing
