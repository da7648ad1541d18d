"""What the Python test drivers (tests/browser, tests/deploy) share: a free loopback port and
a check that prints what it verified, or stops the run with what failed."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(condition: bool, what: str) -> None:
    """`ok   <what>`, or an AssertionError saying what did not hold."""
    if not condition:
        raise AssertionError(what)
    print(f"ok   {what}", flush=True)
