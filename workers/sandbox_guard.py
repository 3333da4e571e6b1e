"""Hold the garbage collector off while temporalio's sandbox validates workflows.

On Python 3.10 and 3.11, a collection that runs a finalizer which imports (a
ResourceWarning of an unclosed socket, a coroutine never awaited: both import
``warnings``) while the sandbox loads a workflow module re-enters CPython's
non-reentrant module lock, and the load fails with ``KeyError(<thread id>)``:
"Failed validating workflow" (CPython bug 91351; temporalio/sdk-python issue 585,
a fix proposed in its pull request 1833). Building a Worker validates every
sandboxed workflow, so a worker would fail to start, rarely and at random. A
fresh-clone run of the test suite hit it once in a test's worker setup.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_collection() -> Iterator[None]:
    """Collect now, then let no collection run until the block ends."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
