"""A real OpenSSH server (Debian's `openssh-server`, installed by the Makefile) on a free loopback
port, with a configuration, host key and client key of its own, for SFTP tests.

It logs in the user running the tests with a key made for the session, serves SFTP with
`internal-sftp`, and knows nothing of the machine's own sshd or keys."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshServer:
    """A running sshd, and what a client needs to reach it."""

    host: str
    port: int
    user: str
    key_file: Path
    private_key: str
    host_key: str
    """The server's public key line, `ssh-ed25519 AAAA…`."""
    process: subprocess.Popen[bytes]

    def settings(self, folder: Path, **extra: object) -> dict[str, object]:
        """A destination's `settings` for a folder on this server, logging in with the key."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "folder": str(folder),
            "private_key_file": str(self.key_file),
            "host_key": self.host_key,
            **extra,
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_ssh_server(directory: Path) -> SshServer:
    """Start sshd with everything of its own in `directory`; wait until it answers."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, kind in (("host_key", "ed25519"), ("client_key", "ed25519")):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(directory / name)],
            check=True,
        )
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    os.chmod(directory / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "PidFile none\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "Subsystem sftp internal-sftp\n"
        "LogLevel ERROR\n"
    )
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                if connection.recv(4).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(
                f"sshd did not start: {process.stderr.read() if process.stderr else ''!r}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("sshd did not answer within 20 s")
        time.sleep(0.05)
    kind, key = (directory / "host_key.pub").read_text().split()[:2]
    return SshServer(
        host="127.0.0.1",
        port=port,
        user=getpass.getuser(),
        key_file=directory / "client_key",
        private_key=(directory / "client_key").read_text(),
        host_key=f"{kind} {key}",
        process=process,
    )
