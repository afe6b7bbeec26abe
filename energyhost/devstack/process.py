"""Process life cycle for the development stack: free loopback ports, listener checks, stopping.

Used by the test fixtures, the benchmarks and ``energyhost demo``.  Each daemon gets
its own directory (config, data, logs) and free ``127.0.0.1`` ports; after start-up the
process that *listens* on the port is checked to be the one we started (socket inode in
``/proc/net/tcp`` matched against ``/proc/<pid>/fd``), so a test never talks to a stray
daemon.  ``stop()`` sends SIGTERM then SIGKILL to our PID only; ``kill()`` sends SIGKILL
(crash simulation); ``start()`` again reuses the same port and directories, which is
what outage tests need.

Error policy::

    ServiceError    a daemon did not start, exited early, or its port is held by another process
"""

from __future__ import annotations

import multiprocessing.process
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A daemon could not be started or is not the process we expect on its port."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now (bound to 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen | multiprocessing.process.BaseProcess | None, timeout: float = 10.0,
                 sig: int = signal.SIGTERM) -> int | None:
    """Stop one child we started: ``sig`` (SIGTERM), wait up to ``timeout`` s, then SIGKILL and reap.

    Works for a :class:`subprocess.Popen` and a :class:`multiprocessing.Process`; a process that
    already exited is only reaped.  Returns the exit code (negative: killed by that signal).
    """
    if proc is None:
        return None
    if isinstance(proc, multiprocessing.process.BaseProcess):
        if proc.is_alive():
            os.kill(proc.pid, sig)
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
        return proc.exitcode
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state (0A) on ``port`` from /proc/net/tcp and tcp6."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def listener_pid_matches(pid: int, port: int) -> bool:
    """True if process ``pid`` owns a socket listening on TCP ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


class _Daemon:
    """Common life cycle: one subprocess, its log file, start/stop/kill by our own PID."""

    name = "daemon"
    start_timeout_s = 30.0

    def __init__(self, base_dir: str | os.PathLike, port: int | None) -> None:
        self.base_dir = Path(base_dir).resolve()     # daemons run with their own cwd
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._auto_port = port is None
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen | None = None
        self._started_once = False
        self.log_path = self.base_dir / f"{self.name}.log"

    # -- to be provided by subclasses
    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """Protocol-level readiness, called once the PID is seen listening."""
        return True

    def _ports(self) -> list[int]:
        return [self.port]

    def _repick_ports(self) -> None:
        self.port = free_port()

    # -- life cycle
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> _Daemon:
        """Start the daemon (again, on the same port and dirs if it ran before) and wait until ready."""
        if self.running:
            return self
        attempts = 3 if (self._auto_port and not self._started_once) else 1
        for attempt in range(attempts):
            self._write_config()
            try:
                self._spawn_and_wait()
                self._started_once = True
                return self
            except ServiceError:
                if attempt == attempts - 1:
                    raise
                self._repick_ports()   # a port we picked was taken meanwhile by someone else
        return self

    def _spawn_and_wait(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.base_dir,
                                          start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServiceError(f"{self.name} exited with code {code} at start-up; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            if all(listener_pid_matches(self._proc.pid, p) for p in self._ports()) and self._ready():
                return
            time.sleep(0.05)
        self.kill()
        raise ServiceError(f"{self.name} not ready on {self.host}:{self.port} after {self.start_timeout_s} s "
                           f"(or the port is held by another process); log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our PID, wait up to ``timeout`` s, then SIGKILL it."""
        stop_process(self._proc, timeout)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL our PID (crash simulation: no clean shutdown, no final save)."""
        stop_process(self._proc, 10.0, signal.SIGKILL)
        self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
