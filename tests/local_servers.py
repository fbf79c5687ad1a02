"""The servers the tests start on 127.0.0.1 (the GCS emulator, ``yoda-serve`` on the host and in
its image): a free port for one, waiting until it answers, a slow link in front of one, and
``yoda-serve``'s app served in this process by its own uvicorn set-up."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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


def _pipe(source: socket.socket, sink: socket.socket, chunk: int, pause_s: float) -> None:
    """Copy ``source`` to ``sink``, ``chunk`` bytes at a time, ``pause_s`` after each; close
    both at the end of either."""
    try:
        while data := source.recv(chunk):
            sink.sendall(data)
            time.sleep(pause_s)
    except OSError:
        pass
    finally:
        source.close()
        sink.close()


@contextmanager
def slow_link(upstream: str, *, bytes_per_s: int) -> Iterator[str]:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``) that hands the
    answers back at about ``bytes_per_s``: a real download through it takes seconds. Yields its
    ``http://host:port`` (fake-gcs-server's download links follow the ``Host`` asked for)."""
    target = urllib.parse.urlsplit(upstream)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    chunk = 8192

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            server = socket.create_connection((target.hostname or "127.0.0.1", target.port or 80))
            for source, sink, pause in ((client, server, 0.0),
                                        (server, client, chunk / bytes_per_s)):  # fmt: skip
                threading.Thread(target=_pipe, args=(source, sink, chunk, pause),
                                 daemon=True).start()  # fmt: skip

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@contextmanager
def serving_in_thread(app: Any, limits: Any) -> Iterator[str]:
    """``yoda-serve``'s ``app`` under its uvicorn set-up (``yoda_inference.serve.uvicorn_server``:
    the request deadline, the connection limit) in a thread of this process, on a free port;
    yields its ``http://127.0.0.1:PORT``."""
    from yoda_inference.serve import listen, uvicorn_server

    sock = listen("127.0.0.1", 0)
    server = uvicorn_server(app, limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("yoda-serve's app did not start in its thread")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
