"""A clock the waiter tests drive by hand: time moves only when the code under test sleeps (or a fake
watch stands for a read timeout)."""
from __future__ import annotations


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
