"""uvicorn's h11 protocol with one deadline for a whole request, and refusals in one-line JSON.

uvicorn has no timeout on receiving a request: its keep-alive timeout covers the idle time
between requests only, and every byte received resets it, so a client trickling a byte at a time
holds its connection for as long as it likes (Kludex/uvicorn#157: ``--timeout-request-start``
and ``--timeout-request-complete``, still open). ASGI middleware cannot help: the app is called
once the headers are whole. So the deadline is kept here, on uvicorn's extension point for the
protocol (``Config(http=<class>)``): a request's headers and body must arrive within
``--read-timeout-s`` of its first byte (of the connection, for its first request). Past it the
connection is closed; a request whose headers arrived gets a 408 first. The deadline ends once
the request is whole, so a long generation is never cut.

uvicorn's own refusals of bad HTTP (a bad request line, a bad ``Content-Length``, headers over
``h11_max_incomplete_event_size``) are plain text; here they are ``{"error": "…"}`` too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

logger = logging.getLogger(__name__)


def refusal(conn: h11.Connection, status: int, message: str) -> bytes:
    """A whole ``{"error": message}`` answer that closes the connection, as ``conn`` sends it."""
    body = json.dumps({"error": " ".join(message.split())}).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body))),
               ("connection", "close")]  # fmt: skip
    events = (h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
              h11.Data(data=body), h11.EndOfMessage())  # fmt: skip
    return b"".join(conn.send(event) or b"" for event in events)


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol; a request not whole within :attr:`read_timeout_s` is dropped."""

    read_timeout_s: float = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request on a kept-alive connection
        super().data_received(data)
        self._disarm_if_whole()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self._arm()  # a pipelined request, part of it read already

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """Refuse what h11 could not parse (called while its error is being handled)."""
        self._disarm()
        reason = sys.exc_info()[1]
        detail = f": {reason}" if isinstance(reason, h11.RemoteProtocolError) else ""
        self.transport.write(refusal(self.conn, 400, f"invalid HTTP request{detail}"))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _disarm_if_whole(self) -> None:
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        if self.conn.their_state is h11.SEND_BODY and self.conn.our_state is h11.SEND_RESPONSE:
            logger.warning("%s: the request's body did not arrive within %g s: 408", client,
                           self.read_timeout_s)  # fmt: skip
            message = (f"the request did not arrive whole within {self.read_timeout_s:g} s "
                       "(--read-timeout-s)")  # fmt: skip
            self.transport.write(refusal(self.conn, 408, message))
        else:  # no request line or headers yet: nobody to answer
            logger.info("%s: no whole request within %g s: closed", client, self.read_timeout_s)
        self.transport.close()


def with_read_timeout(seconds: float) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.Config(http=…)``, with this deadline."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"read_timeout_s": seconds})
