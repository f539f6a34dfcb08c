"""Starting and stopping the long-running pieces (`e2a up`): receiver, webserver, daemon."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import httpx


def _restore_signals() -> None:
    # A non-interactive parent may start children with SIGINT ignored; Dagster copies that onto
    # SIGTERM and would then ignore both (DAGSTER-NOTES §11).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class ProcessGroup:
    """Child processes, each in its own process group, stopped together with SIGINT."""

    tmpdir: Path
    environment: Mapping[str, str]  # every child's environment (`Settings.child_environment()`)
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    logs: dict[str, tuple[Path, int]] = field(default_factory=dict)  # name -> (log, its size at start)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
        """Start a child in a new session; its output goes to `log` (appended) when given."""
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        child_env = {**self.environment, "TMPDIR": str(self.tmpdir), **(env or {})}
        out = open(log, "ab") if log else None  # noqa: SIM115 - owned by the child for its lifetime
        since = out.tell() if out else 0
        proc = subprocess.Popen(args, env=child_env, preexec_fn=_restore_signals, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT if out else None)
        if out:
            out.close()
        self.children.append((name, proc))
        if log:
            self.logs[name] = (log, since)
        return proc

    def failed(self) -> str | None:
        """Which child has exited, with the line of its log that says why, or None."""
        for name, proc in self.children:
            if proc.poll() is not None:
                reason = why_it_stopped(*self.logs[name]) if name in self.logs else ""
                return f"{name} exited with code {proc.returncode}" + (f" ({reason})" if reason else "")
        return None

    def stop(self, timeout: float = 20.0) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for _, proc in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TROUBLE = re.compile(r"error|exception|fatal|denied|refused|in use", re.IGNORECASE)


def why_it_stopped(log: Path, since: int = 0) -> str:
    """The line of a child's log (from byte `since`, this start's part) that best says why it
    stopped: the last one that mentions an error, else the last line."""
    try:
        with open(log, "rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    trouble = [line for line in lines if _TROUBLE.search(line)]
    chosen = trouble[-1] if trouble else (lines[-1] if lines else "")
    return chosen[:300]


def prepare_instance() -> None:
    """Create the Dagster instance's storage (run, event log, schedule) once, before the webserver
    and daemon start: both would otherwise create a fresh SQLite home at the same moment and one
    of them can die on the race (`UNIQUE constraint failed: alembic_version`)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        # One query against each storage, so each is created and stamped here.
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_event(dg.AssetKey("e2a_instance_probe"))


def wait_http(url: str, timeout: float, group: ProcessGroup) -> bool:
    """Poll `url` until it answers 2xx, a child dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group.failed():
            return False
        try:
            if httpx.get(url, timeout=2).is_success:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def tool(name: str) -> str:
    """A console script installed next to the running Python (the project's venv)."""
    return str(Path(sys.executable).with_name(name))
