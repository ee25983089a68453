"""A local Orthanc PACS in a temporary folder: for the tests, the benchmark and demos.

:class:`OrthancServer` writes an Orthanc JSON configuration (HTTP and DICOM ports, AE title,
the DICOMweb plugin, the modalities it may send to), starts the Debian ``orthanc`` binary on
127.0.0.1 and waits until its REST API answers. Install with
``apt-get install orthanc orthanc-dicomweb`` (the Makefile's ``system-deps`` does).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from meddx.pacs.errors import PacsError

__all__ = ["OrthancServer", "dicomweb_plugin", "find_orthanc", "free_port"]

_PLUGIN_GLOBS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
                 "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                 "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so")


def find_orthanc() -> str | None:
    """The Orthanc executable (PATH, then Debian's /usr/sbin), or None."""
    return shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/local/sbin/Orthanc") if os.access(p, os.X_OK)),
        None)


def dicomweb_plugin() -> str | None:
    """Path of the DICOMweb plugin (``dpkg -L orthanc-dicomweb``), or None."""
    try:
        listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        listing = []
    for line in listing:
        if "libOrthancDicomWeb.so" in line and os.path.isfile(line):
            return line
    for pattern in _PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OrthancServer:
    """An Orthanc process with its own configuration and storage under ``workdir``.

    Args:
        workdir: folder for the configuration, the database, the storage and the log.
        aet: Orthanc's AE title.
        modalities: AE title -> (host, port) of the DICOM nodes Orthanc may talk to (C-MOVE
            destinations, our listener); each is allowed echo, find, get, move and store.
        http_port / dicom_port: fixed ports, or None for free ones.
        user: ``(name, password)`` to enable HTTP basic authentication, or None for none.
        dicomweb: load the DICOMweb plugin (required for QIDO/WADO/STOW).

    Use as a context manager; :meth:`stop` also runs at exit of the ``with`` block.
    """

    def __init__(self, workdir: str | os.PathLike[str], aet: str = "ORTHANC",
                 modalities: dict[str, tuple[str, int]] | None = None,
                 http_port: int | None = None, dicom_port: int | None = None,
                 user: tuple[str, str] | None = None, dicomweb: bool = True):
        self.workdir = Path(workdir)
        self.aet = aet
        self.modalities = dict(modalities or {})
        self.http_port = http_port or free_port()
        self.dicom_port = dicom_port or free_port()
        self.user = user
        self.dicomweb = dicomweb
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "orthanc.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, Any]:
        """The Orthanc configuration this server runs with."""
        config: dict[str, Any] = {
            "Name": "meddx-orthanc",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": self.user is not None,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            # Our results are SEG / SR / SC objects; accept any storage SOP class.
            "UnknownSopClassAccepted": True,
            "DicomModalities": {
                aet: {"AET": aet, "Host": host, "Port": port, "AllowEcho": True,
                      "AllowFind": True, "AllowGet": True, "AllowMove": True,
                      "AllowStore": True}
                for aet, (host, port) in self.modalities.items()},
            "StableAge": 2,
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 8,
            "Plugins": [],
        }
        if self.user is not None:
            config["RegisteredUsers"] = {self.user[0]: self.user[1]}
        if self.dicomweb:
            plugin = dicomweb_plugin()
            if plugin is None:
                raise PacsError("Orthanc's DICOMweb plugin is not installed "
                                "(apt-get install orthanc-dicomweb)", retryable=False)
            config["Plugins"] = [plugin]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                                  "Ssl": False, "StudiesMetadata": "Full",
                                  "SeriesMetadata": "Full"}
        return config

    def start(self, timeout: float = 60.0) -> OrthancServer:
        """Start Orthanc and wait until its REST API answers.

        Raises:
            PacsError: Orthanc is not installed, exits, or does not answer within ``timeout``.
        """
        binary = find_orthanc()
        if binary is None:
            raise PacsError("Orthanc is not installed (apt-get install orthanc "
                            "orthanc-dicomweb)", retryable=False)
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([binary, str(config_path)], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PacsError(f"Orthanc exited with status {self.process.returncode} while "
                                f"starting: {self.log_tail()}", retryable=False)
            if self.alive():
                return self
            time.sleep(0.2)
        self.stop()
        raise PacsError(f"Orthanc did not answer on {self.url} within {timeout:.0f} s: "
                        f"{self.log_tail()}")

    def alive(self) -> bool:
        """Whether the REST API answers ``/system``."""
        import requests

        try:
            return requests.get(f"{self.url}/system", auth=self.user, timeout=2).ok
        except requests.RequestException:
            return False

    def rest(self, method: str, path: str, **kwargs) -> Any:
        """Call Orthanc's REST API; JSON answer (or bytes for non-JSON)."""
        import requests

        response = requests.request(method, f"{self.url}{path}", auth=self.user, timeout=30,
                                    **kwargs)
        if not response.ok:
            raise PacsError(f"Orthanc {method} {path}: HTTP {response.status_code} "
                            f"{response.text[:200]}", retryable=response.status_code >= 500)
        try:
            return response.json()
        except ValueError:
            return response.content

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
