"""A PostgreSQL cluster of a test's own (``initdb`` on a free port), to stop, freeze and
restart: the shared server at 5432 must never be touched that way."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.serving import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            if REQUIRE_SERVICES:
                pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are required")
            pytest.skip("PostgreSQL's server binaries are not installed")
        self.bin = binaries
        # Its own directory under the system's temporary one: pytest's are private to
        # the user running the tests, which the postgres OS user (below) cannot enter.
        self.root = root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = root / "data"
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, run it as the postgres OS user.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "postgres.log"),
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        """Down at once, as a crash or a lost host would take it (``immediate``)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for status in glob.glob("/proc/[0-9]*/status"):
            try:
                text = Path(status).read_text()
            except OSError:
                continue
            ppid = next(
                (line.split()[1] for line in text.splitlines() if line.startswith("PPid:")), "0"
            )
            if int(ppid) == postmaster:
                children.append(int(status.split("/")[2]))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP to the server and every backend: connections stay open, nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        try:
            self.thaw()
        except (OSError, ValueError):
            pass
        try:
            self.stop()
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
