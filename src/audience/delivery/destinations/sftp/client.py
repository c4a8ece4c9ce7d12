"""A folder on an SFTP server as a destination (paramiko).

The server's host key is always checked, against the destination's `host_key` or a
`known_hosts` file: an unknown or changed key fails the run as terminal, naming the host, and
nothing is sent. A file is written to a hidden temporary name in the folder
(`.name.xxxxxxxx.tmp`), closed (the server has every byte), then renamed to its final name —
SFTP's rename never replaces an existing file, so a file of another run is never overwritten.
Which run wrote each file is recorded in the folder's `.audience/` subfolder before the rename,
as for a local folder, so a retry recognises its own file; where the server forbids that
subfolder, files are still delivered and a retry relies on the run log alone.

One SSH connection serves every file of a run. Lost connections, time-outs and server failures
are transient (the run is retried with back-off); refused logins, missing folders and
permissions are terminal.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import posixpath
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

from audience.delivery.destinations.base import PublishedObject, check_name
from audience.delivery.destinations.sftp.settings import SftpSettings
from audience.delivery.packaging import Meter
from audience.errors import DeliveryError, TerminalDeliveryError, TransientDeliveryError

RECORDS_FOLDER = ".audience"
_TERMINAL_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EROFS})
# paramiko writes this much per request; pipelining keeps several in flight.
_BLOCK = 32 * 1024


def _error(error: BaseException, what: str) -> DeliveryError:
    """The delivery error an SFTP failure is: terminal when retrying cannot mend it."""
    if isinstance(error, paramiko.AuthenticationException):
        return TerminalDeliveryError(f"{what}: the server refused the login ({error})")
    if isinstance(error, paramiko.BadHostKeyException):
        return TerminalDeliveryError(
            f"{what}: the server's host key has changed (it offered {error.key.get_name()} "
            f"{error.key.fingerprint}, the destination expects "
            f"{error.expected_key.fingerprint}); if the server was re-keyed on purpose, "
            "update the destination's host_key or known_hosts"
        )
    if isinstance(error, OSError) and error.errno in _TERMINAL_ERRNOS:
        return TerminalDeliveryError(f"{what}: {error.strerror or error}")
    return TransientDeliveryError(f"{what}: {error or type(error).__name__}")


class _HostKeyUnknown(paramiko.MissingHostKeyPolicy):
    """Refuse a server whose key is not known (paramiko's RejectPolicy, with our words)."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise TerminalDeliveryError(
            f"the host key of {hostname} ({key.get_name()}) is not known: give the destination "
            "its `host_key` or add it to `known_hosts`"
        )


class SftpClient:
    """Publishes files into one folder of an SFTP server."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self.folder = settings.folder.rstrip("/") or "/"
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # connection

    def _connection(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._ssh is not None:
            transport = self._ssh.get_transport()
            if transport is not None and transport.is_active():
                return self._sftp
            self.close()
        settings = self.settings
        ssh = paramiko.SSHClient()
        self._trust(ssh)
        try:
            ssh.connect(
                settings.host,
                port=settings.port,
                username=settings.user,
                password=settings.password,
                pkey=self._key(),
                key_filename=settings.private_key_file,
                look_for_keys=False,
                allow_agent=False,
                timeout=settings.timeout_seconds,
                banner_timeout=settings.timeout_seconds,
                auth_timeout=settings.timeout_seconds,
            )
            self._sftp = ssh.open_sftp()
            self._sftp.get_channel().settimeout(settings.timeout_seconds)  # type: ignore[union-attr]
        except DeliveryError:
            ssh.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as error:
            ssh.close()
            raise _error(error, f"cannot connect to {self._server()}") from error
        self._ssh = ssh
        return self._sftp

    def _trust(self, ssh: paramiko.SSHClient) -> None:
        """Know the server's key from the settings, else from known_hosts; nothing else."""
        settings = self.settings
        ssh.set_missing_host_key_policy(_HostKeyUnknown())
        if settings.host_key is not None:
            fields = settings.host_key.split()
            if len(fields) < 2:
                raise TerminalDeliveryError(
                    f"host_key of {settings.host}: expected '<type> <base64 key>', e.g. "
                    "'ssh-ed25519 AAAAC3…' (the line ssh-keyscan prints, without the host)"
                )
            try:
                key = paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
            except (ValueError, paramiko.SSHException, UnknownKeyType) as error:
                first = (str(error).splitlines() or [type(error).__name__])[0].rstrip(" :,")
                raise TerminalDeliveryError(
                    f"host_key of {settings.host} is not a public key: {first}"
                ) from None
            ssh.get_host_keys().add(self._known_as(), key.get_name(), key)
            return
        path = Path(settings.known_hosts or "~/.ssh/known_hosts").expanduser()
        if path.exists():
            try:
                ssh.load_host_keys(str(path))
            except (OSError, paramiko.SSHException) as error:
                raise TerminalDeliveryError(f"cannot read known_hosts {path}: {error}") from None

    def _known_as(self) -> str:
        """The name known_hosts files give the server: `host`, or `[host]:port` off port 22."""
        host, port = self.settings.host, self.settings.port
        return host if port == 22 else f"[{host}]:{port}"

    def _key(self) -> paramiko.PKey | None:
        text = self.settings.private_key
        if text is None:
            return None
        for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            with contextlib.suppress(paramiko.SSHException, ValueError):
                return kind.from_private_key(io.StringIO(text))
        raise TerminalDeliveryError(
            f"the private_key of {self._server()} is not an unencrypted OpenSSH or PEM key"
        )

    def _server(self) -> str:
        return f"{self.settings.user}@{self.settings.host}:{self.settings.port}"

    def close(self) -> None:
        """Close the connection (the next call opens another)."""
        if self._ssh is not None:
            self._ssh.close()
        self._ssh = self._sftp = None

    # names

    def _path(self, name: str) -> str:
        return posixpath.join(self.folder, check_name(name))

    def _record_path(self, name: str) -> str:
        return posixpath.join(self.folder, RECORDS_FOLDER, f"{name}.json")

    def address(self, name: str) -> str:
        """The file's `sftp://` URI: same server, port and path, same place."""
        return f"sftp://{self.settings.host}:{self.settings.port}{self._absolute(name)}"

    def location(self, name: str) -> str:
        """The file's `sftp://` URI."""
        return self.address(name)

    def _absolute(self, name: str) -> str:
        path = self._path(name)
        return path if path.startswith("/") else f"/~/{path.removeprefix('./')}"

    # the protocol

    def check(self) -> None:
        """The server answers, takes the login, and lets us write into the folder."""
        sftp = self._connection()
        probe = posixpath.join(self.folder, f".audience-check-{secrets.token_hex(4)}.tmp")
        try:
            attributes = sftp.stat(self.folder)
            if not stat.S_ISDIR(attributes.st_mode or 0):
                raise TerminalDeliveryError(
                    f"cannot write into {self.folder} on {self._server()}: not a folder"
                )
            with sftp.open(probe, "wb"):
                pass
            sftp.remove(probe)
        except DeliveryError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise _error(error, f"cannot write into {self.folder} on {self._server()}") from error

    def exists(self, name: str) -> bool:
        """Whether the folder holds a file called `name`."""
        try:
            self._connection().stat(self._path(name))
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise _error(error, f"cannot check {self.address(name)}") from error
        return True

    def publish(self, name: str, chunks: Iterable[bytes], *, run_id: str) -> PublishedObject:
        """Write under a temporary name, then rename to `name` (see the module)."""
        sftp = self._connection()
        target = self._path(name)
        try:
            published = self._published(sftp, name, run_id)
            if published is not None:
                return published
            self.discard(name)
            temporary = posixpath.join(self.folder, f".{name}.{secrets.token_hex(4)}.tmp")
        except DeliveryError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise _error(error, f"cannot write into {self.folder} on {self._server()}") from error
        try:
            meter = Meter(chunks)
            with sftp.open(temporary, "wb", bufsize=_BLOCK) as remote:
                remote.set_pipelined(True)
                for chunk in meter:
                    remote.write(chunk)
            # Closed: the server has acknowledged every byte.
            self._write_record(
                sftp, name, {"run_id": run_id, "bytes": meter.bytes, "sha256": meter.sha256}
            )
            sftp.rename(temporary, target)
        except BaseException as error:
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                sftp.remove(temporary)
            if isinstance(error, OSError | paramiko.SSHException | EOFError):
                if isinstance(error, OSError) and self._taken(sftp, target):
                    raise TerminalDeliveryError(
                        f"{self.address(name)} appeared while it was written; refusing to "
                        "overwrite it"
                    ) from error
                raise _error(error, f"cannot write {self.address(name)}") from error
            raise
        return PublishedObject(self.address(name), meter.bytes, meter.sha256)

    def _taken(self, sftp: paramiko.SFTPClient, target: str) -> bool:
        with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
            sftp.stat(target)
            return True
        return False

    def _published(
        self, sftp: paramiko.SFTPClient, name: str, run_id: str
    ) -> PublishedObject | None:
        """The file this run already wrote at `name`; None if there is none; refuse another's."""
        try:
            sftp.stat(self._path(name))
        except FileNotFoundError:
            return None
        record: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError), sftp.open(self._record_path(name)) as file:
            record = json.loads(file.read().decode("utf-8"))
        if record.get("run_id") != run_id:
            raise TerminalDeliveryError(
                f"{self.address(name)} already exists and was not written by this run; refusing "
                "to overwrite it (make names unique, e.g. with {{ run_id }} or the time)"
            )
        return PublishedObject(self.address(name), int(str(record["bytes"])), str(record["sha256"]))

    def _write_record(
        self, sftp: paramiko.SFTPClient, name: str, record: dict[str, object]
    ) -> None:
        """Best effort: a server may forbid the records' subfolder; the run log still knows."""
        folder = posixpath.join(self.folder, RECORDS_FOLDER)
        with contextlib.suppress(OSError):
            sftp.mkdir(folder)
        with contextlib.suppress(OSError), sftp.open(self._record_path(name), "wb") as file:
            file.write(json.dumps(record).encode("utf-8"))

    def discard(self, name: str) -> int:
        """Remove the temporary files an unfinished attempt at `name` left; how many."""
        stale = re.compile(rf"\.{re.escape(check_name(name))}\.[0-9a-f]{{8}}\.tmp")
        sftp = self._connection()
        removed = 0
        try:
            for entry in sftp.listdir(self.folder):
                if stale.fullmatch(entry):
                    with contextlib.suppress(FileNotFoundError):
                        sftp.remove(posixpath.join(self.folder, entry))
                        removed += 1
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise _error(error, f"cannot clean up {self.folder} on {self._server()}") from error
        return removed


def open_client(settings: SftpSettings, root: Path | None) -> SftpClient:
    """A client for the settings' server and folder (`root` has no say there)."""
    del root
    return SftpClient(settings)
