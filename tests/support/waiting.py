"""Polling and clock helpers shared by the tests and the benchmarks (not a test module)."""

import time


def wait_for(fn, timeout: float = 10.0, every: float = 0.1):
    """Call ``fn`` until it returns something truthy or ``timeout`` [s] passes; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)


class Clock:
    """A controllable clock [ns since the epoch], for the store's and the app's ``clock=``."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += int(seconds * 1_000_000_000)
