"""A private PostgreSQL primary and a streaming replica, started and stopped by the tests.

``initdb`` on a free port in a directory of its own, ``wal_level=replica``; the replica is
``pg_basebackup -R`` of it, with ``recovery_min_apply_delay`` so it is always behind right
after a write. Both run as the ``postgres`` OS user when the tests run as root (PostgreSQL
refuses root). Everything is stopped and removed on exit, whatever happened.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.serving import free_port

OS_USER = "postgres"


def find_bindir() -> Path | None:
    """The directory of ``initdb``, ``pg_ctl`` and ``pg_basebackup``, if installed."""
    candidates = [os.environ.get("GATEWAY_TEST_PG_BINDIR", "")]
    if shutil.which("pg_config"):
        candidates.append(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=False
            ).stdout.strip()
        )
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and all(
            (Path(candidate) / tool).exists()
            for tool in ("initdb", "pg_ctl", "pg_basebackup", "postgres")
        ):
            return Path(candidate)
    return None


def missing() -> str | None:
    """Why a private cluster cannot be made here (``None``: it can)."""
    if find_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


@dataclass
class Server:
    bindir: Path
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/gateway"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = list(args)
        if os.geteuid() == 0:
            argv = ["runuser", "-u", OS_USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}):\n{done.stdout}"
                f"\n{done.stderr}\n{self.log_tail()}"
            )
        return done

    def log_tail(self) -> str:
        log = self.datadir.parent / f"{self.datadir.name}.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def start(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.datadir.parent / f"{self.datadir.name}.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(
            str(self.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-Atqc",
            sql,
        ).stdout.strip()


@dataclass
class Cluster:
    primary: Server
    replica: Server


def _configure(datadir: Path, port: int, extra: str) -> None:
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{datadir}'\n"
            "fsync = off\nsynchronous_commit = on\nfull_page_writes = off\n"
            "max_connections = 60\nshared_buffers = 16MB\n" + extra
        )


@contextmanager
def cluster(apply_delay: str = "2s") -> Iterator[Cluster]:
    """A running primary (with an empty ``gateway`` database) and its delayed replica."""
    bindir = find_bindir()
    assert bindir is not None, missing()
    root = Path(tempfile.mkdtemp(prefix="gw-pg-", dir="/tmp"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, OS_USER)
    primary = Server(bindir, root / "primary", free_port())
    replica = Server(bindir, root / "replica", free_port())
    try:
        primary._run(
            str(bindir / "initdb"),
            "-D",
            str(primary.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        _configure(
            primary.datadir,
            primary.port,
            "wal_level = replica\nmax_wal_senders = 4\nwal_keep_size = 64MB\n",
        )
        with (primary.datadir / "pg_hba.conf").open("a") as hba:
            hba.write("\nhost replication all 127.0.0.1/32 trust\n")
        primary.start()
        primary.psql("CREATE DATABASE gateway")
        primary._run(
            str(bindir / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(replica.datadir),
            "-R",
            "-X",
            "stream",
            "--no-sync",
            "-c",
            "fast",
        )
        _configure(
            replica.datadir,
            replica.port,
            f"hot_standby = on\nrecovery_min_apply_delay = '{apply_delay}'\n"
            "wal_receiver_status_interval = 1s\n",
        )
        replica.start()
        yield Cluster(primary, replica)
    finally:
        for server in (replica, primary):
            if server.running():
                try:
                    server.stop("immediate")
                except Exception:  # noqa: S110 - removed below either way
                    pass
        shutil.rmtree(root, ignore_errors=True)


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    """Polls ``condition()`` until it is true (fails naming ``what`` after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")
