"""Polling helper shared by the integration tests and the benchmarks (not a test module)."""

import time


def wait_for(fn, timeout: float, every: float = 0.1):
    """Call ``fn`` until it returns something truthy or ``timeout`` [s] passes; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)
