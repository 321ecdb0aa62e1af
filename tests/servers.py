"""Real servers on loopback for the scale-out tests: an S3-protocol store (moto's server) and a
Postgres from Debian's package, run as the postgres user in a folder that user owns. Each is
started once per test session and stopped by it, pass or fail."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow.fs as pafs

AWS_ENV = {"AWS_ACCESS_KEY_ID": "ei-test", "AWS_SECRET_ACCESS_KEY": "ei-test-secret",
           "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class S3:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def create_bucket(self, name: str) -> None:
        filesystem = pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http",
                                       access_key=AWS_ENV["AWS_ACCESS_KEY_ID"],
                                       secret_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                                       region=AWS_ENV["AWS_REGION"], allow_bucket_creation=True)
        filesystem.create_dir(name)


@contextmanager
def s3_server() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str = "postgres"

    def conninfo(self, database: str) -> str:
        return f"dbname={database} host={self.host} port={self.port} user={self.user}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server() -> Iterator[tuple[Postgres, object]]:
    """A throwaway cluster; yields it and a `createdb(name)` function."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "the scale-out tests need Debian's postgresql: apt-get install postgresql"
    bin_dir = os.path.dirname(found[-1])
    folder = tempfile.mkdtemp(prefix="eipg-", dir="/tmp")  # short: socket paths are limited
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = os.path.join(folder, "data"), free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(_as_postgres([f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"]), **run)  # type: ignore[call-overload]
    subprocess.run(_as_postgres([f"{bin_dir}/pg_ctl", "-D", data, "-l", f"{folder}/log", "-w", "-t",
                                 "60", "start", "-o", f"-p {port} -k {folder} -c "
                                 "listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"]),
                   **run)  # type: ignore[call-overload]

    def createdb(name: str) -> None:
        subprocess.run(_as_postgres([f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port),
                                     "-U", "postgres", name]), **run)  # type: ignore[call-overload]

    try:
        yield Postgres("127.0.0.1", port), createdb
    finally:
        subprocess.run(_as_postgres([f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
