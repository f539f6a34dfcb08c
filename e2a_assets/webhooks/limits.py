"""The receiver's resource limits (docs/webhooks.md, "Operating the receiver"): one value per knob,
read from the environment by settings.py and handed to the app and the HTTP protocol.

Every limit is there so that a client, hostile or broken, cannot hold more than a bounded share of
one worker: bytes of headers, number of headers, seconds to send its request head and body,
seconds of idle keep-alive, connections at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from e2a_assets.domain.intake_limits import DEFAULT_WINDOW, TimeWindow


@dataclass(frozen=True)
class ReceiverLimits:
    max_body_bytes: int = 1 << 20  # DOMAIN §1.2: 413 above 1 MiB
    max_header_bytes: int = 16 * 1024  # request line + all headers; 431 above
    max_header_count: int = 64  # 431 above
    head_timeout_s: float = 10.0  # to send the request line and headers, else the connection is closed
    body_timeout_s: float = 10.0  # to send the body once the headers are in, else 408
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    max_connections: int = 512  # per worker; above it uvicorn answers 503 (uvicorn's limit_concurrency)
    ingest_timeout_s: float = 3.0  # to commit, else 503 + Retry-After (Shopify gives up after 5 s)
    ready_timeout_s: float = 2.0  # for /readyz to write its heartbeat
    # `--workers N`: seconds a worker may take to answer uvicorn's liveness ping before it is killed
    # and replaced. uvicorn's 5 s default kills workers that are still starting on a loaded host
    # (the ping is only answered once the spawned process runs uvicorn's code), over and over.
    worker_healthcheck_s: int = 60
    window: TimeWindow = DEFAULT_WINDOW  # timestamps accepted (domain/intake_limits.py)
