"""The receiver's HTTP/1.1 protocol: uvicorn's httptools protocol with bounded request heads.

uvicorn bounds idle keep-alive time and concurrency but not the request head: a client may send
headers forever (slow loris) or send megabytes of them before the app, and so authentication, sees
anything. This subclass closes a connection whose request line and headers are not complete within
`head_timeout_s` (408) and answers 431 as soon as they pass `max_header_bytes` or
`max_header_count`, before the request reaches the app.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from e2a_assets.webhooks.limits import ReceiverLimits

log = logging.getLogger("e2a.webhooks")


class _HeadTooLarge(Exception):
    pass


def _response(status: bytes, message: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message)


REQUEST_TIMEOUT = _response(b"408 Request Timeout", b'{"error": "request head not received in time"}')
HEADERS_TOO_LARGE = _response(b"431 Request Header Fields Too Large", b'{"error": "request headers too large"}')


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request heads; `limits` is set per subclass."""

    limits: ReceiverLimits = ReceiverLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            # The first bytes of a further request on a kept-alive connection: its head is timed too.
            self._start_head_timer()
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._close_with(HEADERS_TOO_LARGE, "431: request head over the limit")
        else:
            super().send_400_response(msg)

    # httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._head_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._grow(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    # ------------------------------------------------------------------------------------------
    def _grow(self, size: int, count: int) -> None:
        self._head_bytes += size
        self._head_count += count
        if self._head_bytes > self.limits.max_header_bytes or self._head_count > self.limits.max_header_count:
            # httptools wraps a callback's exception in HttpParserCallbackError and uvicorn answers
            # it with send_400_response: the mark makes that answer a 431.
            self._too_large = True
            raise _HeadTooLarge()

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: the app's body deadline applies instead
        if not self.transport.is_closing():
            self._close_with(REQUEST_TIMEOUT, None)

    def _close_with(self, response: bytes, message: str | None) -> None:
        if message:
            log.info("%s from %s", message, self.client)
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


def bounded_protocol(limits: ReceiverLimits) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn as `http=` in this process, with these limits."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


class EnvironmentBoundedProtocol(BoundedHttpToolsProtocol):
    """For `e2a serve --workers N`: uvicorn imports it by name in each worker process (a class made
    at run time cannot be sent there), and it reads the limits from that worker's environment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if "limits" not in cls.__dict__:
            from e2a_assets.settings import Settings

            cls.limits = Settings.from_env().receiver_limits
        super().__init__(*args, **kwargs)


ENVIRONMENT_PROTOCOL = f"{__name__}:EnvironmentBoundedProtocol"
