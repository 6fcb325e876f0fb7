"""Start and stop Azurite (the Azure Storage emulator, installed from npm) for local runs and tests."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
PORT_TRIES = 3  # starts on newly picked free ports before giving up
# The well-known development key published in the Azurite README (not a secret).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(blob: int, queue: int, table: int) -> str:
    """Connection string for an Azurite instance on the given ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    """A running Azurite process."""

    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int
    workdir: Path
    _own_workdir: bool = field(default=False, repr=False)

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def stop(self) -> None:
        """Stop the process (and remove its data folder if this object created it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def suspend(self) -> None:
        """Stop Azurite but keep its data, to simulate storage being unavailable."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def resume(self) -> None:
        """Start Azurite again on the same ports and data folder."""
        self.process = _spawn(self.blob_port, self.queue_port, self.table_port, self.workdir)
        _wait_ready(self)


def _binary() -> Path:
    path = ROOT / "node_modules" / ".bin" / "azurite"
    if not path.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does this for you)")
    return path


def _spawn(blob: int, queue: int, table: int, workdir: Path) -> subprocess.Popen[bytes]:
    args = [
        str(_binary()),
        "--silent",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
        "--location", str(workdir),
    ]  # fmt: skip
    log = open(workdir / "azurite.log", "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def _wait_ready(azurite: Azurite, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    services = {"Blob": azurite.blob_port, "Queue": azurite.queue_port, "Table": azurite.table_port}
    while time.monotonic() < deadline:
        if azurite.process.poll() is not None:
            log = (azurite.workdir / "azurite.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Azurite exited with {azurite.process.returncode}: {log}")
        if all(_answering(port, service) for service, port in services.items()):
            return
        time.sleep(0.1)
    raise RuntimeError(f"Azurite did not listen on {services} within {timeout:.0f}s")


def _answering(port: int, service: str) -> bool:
    """Whether Azurite's ``service`` answers on ``port`` (another server there does not count: a port
    picked free can be taken by someone else before Azurite binds it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        connection.request("GET", "/")
        server = connection.getresponse().getheader("Server") or ""
    except OSError:
        return False
    finally:
        connection.close()
    return server.startswith(f"Azurite-{service}/")


def start_azurite(
    workdir: Path | None = None,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
) -> Azurite:
    """Start Azurite bound to 127.0.0.1 and wait until all three services listen.

    Ports default to free ones; ``workdir`` (its data folder) defaults to a new temporary folder that
    :meth:`Azurite.stop` removes.
    """
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="azurite-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    # Ports picked free here may be taken by another process before Azurite binds them (parallel test
    # workers): then Azurite exits, and it is started again on other ports.
    tries = 1 if blob_port or queue_port or table_port else PORT_TRIES
    for attempt in range(1, tries + 1):
        blob = blob_port or free_port()
        queue = queue_port or free_port()
        table = table_port or free_port()
        azurite = Azurite(_spawn(blob, queue, table, workdir), blob, queue, table, workdir, own)
        try:
            _wait_ready(azurite)
        except RuntimeError:
            if attempt < tries:
                azurite.suspend()  # its data folder stays for the next try
                continue
            azurite.stop()
            raise
        except BaseException:
            azurite.stop()
            raise
        return azurite
    raise RuntimeError("Azurite did not start")  # only reached with tries < 1


if __name__ == "__main__":  # pragma: no cover - manual use
    instance = start_azurite()
    print(instance.connection_string, flush=True)
    try:
        instance.process.wait()
    except KeyboardInterrupt:
        instance.stop()
    os._exit(0)
