"""The servers the tests start on 127.0.0.1 (the GCS emulator, ``yoda-serve`` on the host and in
its image): a free port for one, and waiting until it answers."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(
    url: str,
    what: str,
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url`` until it answers 200; a refused connection or an HTTP error means not yet.

    Raises:
        RuntimeError: the server's process ended (``alive()`` is false) or ``timeout_s`` passed;
            the message names ``what`` and ends with ``log()``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up at {url}: {log()}")
        time.sleep(0.2)
