"""``running_loop()`` and ``process_id()``: ``asyncio.get_running_loop()`` and
``os.getpid()`` without a system call each.

CPython 3.11's ``get_running_loop`` (and ``current_task()`` without a loop, which asks
it) checks the process id on every call, so that a forked child does not use its
parent's loop: a ``getpid()`` system call each time. The pool, the metrics and the
request limits asked about ten times per request, which strace counted as the worker's
most frequent system call, ahead of its reads and writes.

Here the loop found last is reused while it runs and the caller is on the thread it was
found on: a thread runs one loop at a time, so a running loop found in this thread is
this thread's. Anything else asks asyncio again. A loop is not carried into a forked
child here (gunicorn forks its workers before they start theirs), nor moved from one
thread to another while it runs.

``process_id()`` is the pid as of the last fork (``os.register_at_fork`` keeps it
current): the access line and the multiprocess metrics ask on every line and write.
"""

from __future__ import annotations

import asyncio
import os
from threading import get_ident

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """``os.getpid()``, as of the last fork."""
    return _pid


# The loop found last and its thread, as one tuple: threads replace it whole.
_found: tuple[asyncio.AbstractEventLoop | None, int] = (None, 0)


def running_loop() -> asyncio.AbstractEventLoop:
    """The running event loop; ``RuntimeError`` outside one, as asyncio's."""
    global _found
    loop, thread = _found
    if loop is not None and thread == get_ident() and loop.is_running():
        return loop
    loop = asyncio.get_running_loop()
    _found = (loop, get_ident())
    return loop
