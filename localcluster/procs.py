"""Starting and stopping the cluster's processes, tracked by pid files.

A pid file holds "<pid> <start time>" (field 22 of /proc/<pid>/stat), so a pid that the
kernel has since handed to another process is never signalled.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path


class ComponentError(RuntimeError):
    """A component failed to start; the message names it and quotes its last log lines."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2:].split()


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None


def _alive(pid: int, start_time: str) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[19] == start_time and fields[0] not in ("Z", "X")


def log_tail(log: Path, lines: int = 20) -> str:
    """The last `lines` lines that the latest run (after the last "=== " header) logged."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    latest = text[text.rfind("\n=== ") + 1:].splitlines()
    return "\n".join(latest[-lines:])


class Processes:
    """The processes of one state dir: `pids/<name>.pid`, `logs/<name>.log`."""

    def __init__(self, state_dir: Path):
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"
        self._children: dict[str, subprocess.Popen] = {}  # reaped by us when stopped

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              cgroup: Path | None = None) -> int:
        """Starts `argv` as component `name` (log appended to logs/<name>.log); in `cgroup`
        (a cgroup directory, joined before exec so every child is in it too) when given."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "ab") as out:
            out.write(f"\n=== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
            out.flush()
            # A new session: the component outlives the CLI that started it and gets no
            # terminal signals.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, env=env,
                                    preexec_fn=_joiner(cgroup) if cgroup else None)
        self._children[name] = proc
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def pid(self, name: str) -> int | None:
        """The pid of `name` if the process this state dir started is still running."""
        try:
            pid, start_time = (self.pid_dir / f"{name}.pid").read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid) if _alive(int(pid), start_time) else None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.pid_dir.glob("*.pid")) if self.pid_dir.exists() else []

    def stop(self, name: str, timeout: float = 10.0) -> None:
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(name, pid, timeout):
                os.kill(pid, signal.SIGKILL)
                self._wait_gone(name, pid, 5.0)
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def _wait_gone(self, name: str, pid: int, timeout: float) -> bool:
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            del self._children[name]
            return True
        return wait_until(lambda: self.pid(name) is None, timeout, interval=0.05)

    def check_running(self, name: str) -> None:
        if self.pid(name) is None:
            raise ComponentError(f"{name} exited during start-up; last lines of "
                                 f"{self.log(name)}:\n{log_tail(self.log(name))}")


def _joiner(cgroup: Path) -> Callable[[], None]:
    procs = str(cgroup / "cgroup.procs")

    def join() -> None:   # runs in the child between fork and exec
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    return join


def register_user(users_dir: Path) -> Path:
    """Records a use of the cluster by this process: `users_dir/<pid>.<n>` holding the
    process's start time (one process may hold several uses)."""
    users_dir.mkdir(parents=True, exist_ok=True)
    me = users_dir / f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    me.write_text(f"{_start_time(os.getpid())}\n")
    return me


def live_users(users_dir: Path) -> list[int]:
    """The pids registered in `users_dir` that still run; entries of dead ones are removed."""
    alive = []
    for entry in users_dir.glob("*") if users_dir.exists() else []:
        pid = int(entry.name.split(".")[0])
        if _alive(pid, entry.read_text().strip()):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return alive


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Polls `condition` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
