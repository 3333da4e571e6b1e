"""The one data converter used by every client and worker.

Payload encryption (a codec) will be added here, and only here.
"""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter


def data_converter() -> DataConverter:
    return pydantic_data_converter
