"""The receiver's tenant registry, kept current without a restart (docs/webhooks.md "Rotating a secret").

A running receiver must pick up a new tenant, a next secret or an expiry as soon as the operator
writes it. Checking costs a few `stat` calls at most once per `check_interval_s`; only when a
file's (mtime, size, inode) changed are the files read, and only when their content digest
changed is the registry rebuilt. A registry that no longer loads (a half-written file, a bad
value) is logged and the previous one stays in force: a typo never locks every sender out.
The re-read runs on the event loop (a few milliseconds, once per change): simpler than a watcher
thread, and a request never sees a half-swapped registry.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Callable

from e2a_assets.domain.policies import PolicyError, TenantRegistry

log = logging.getLogger("e2a.webhooks")

Stamp = tuple[tuple[str, int, int, int], ...]


def _stamp(paths: tuple[Path, ...]) -> Stamp:
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((str(path), -1, -1, -1))
    return tuple(out)


def _digest(paths: tuple[Path, ...]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"\0missing")
    return h.hexdigest()


class ReloadingRegistry:
    """The current `TenantRegistry`, re-read from its files when they change."""

    def __init__(self, load: Callable[[], TenantRegistry], *, check_interval_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self._load = load
        self._interval = check_interval_s
        self._monotonic = monotonic
        self._registry = load()
        self._paths = self._registry.sources
        self._stamp = _stamp(self._paths)
        self._digest = _digest(self._paths)
        self._next_check = monotonic() + check_interval_s
        self.reloads = 0
        self.failed_reloads = 0
        # Told of each reload (True) or failed reload (False): the receiver's metrics count them.
        self.on_reload: Callable[[bool], None] = lambda ok: None

    def current(self) -> TenantRegistry:
        """The registry now; re-reads its files when one of them changed since the last look."""
        now = self._monotonic()
        if now >= self._next_check:
            self._next_check = now + self._interval
            stamp = _stamp(self._paths)
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self._registry

    def _reload(self) -> None:
        digest = _digest(self._paths)
        if digest == self._digest:
            return  # touched, not changed
        try:
            registry = self._load()
        except PolicyError as exc:
            self.failed_reloads += 1
            self.on_reload(False)
            log.error("tenant registry not reloaded, the previous one stays in force: %s", exc)
            return
        self._registry = registry
        self._digest = digest
        if registry.sources != self._paths:  # a secret file added or removed
            self._paths = registry.sources
            self._stamp = _stamp(self._paths)
            self._digest = _digest(self._paths)
        self.reloads += 1
        self.on_reload(True)
        log.info("tenant registry reloaded: %d tenant(s)", len(registry.policies))


class StaticRegistry:
    """A registry that never changes (tests, benchmarks, tools): the same interface."""

    reloads = 0
    failed_reloads = 0

    def __init__(self, registry: TenantRegistry):
        self._registry = registry
        self.on_reload: Callable[[bool], None] = lambda ok: None

    def current(self) -> TenantRegistry:
        return self._registry
