"""PGP encryption of delivered files (python-gnupg over Debian's `gpg`).

The recipient's public key is imported into a private GnuPG home made for the delivery and
removed after it, so nothing touches the user's keyring and nothing of it is trusted beyond
this one key. The key must be a public key, able to encrypt, and not expired or revoked; a
private key given by mistake is refused (it must not travel in definitions). Encryption runs
after compression: the file's compressed bytes go through `gpg` into a temporary file, which is
then streamed to the destination, so memory stays flat whatever the size.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from audience.definitions.destination import Destination, PgpOptions
from audience.definitions.references import references
from audience.delivery.destinations.base import expand
from audience.errors import InvalidValue, TerminalDeliveryError

_READ = 1024 * 1024


class _ChunkReader(io.RawIOBase):
    """Chunks as a readable file for gpg's input; remembers an error of the producer, which
    python-gnupg's copying thread would otherwise only log (and the file end early)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
            except BaseException as error:
                self.error = error
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


class Recipient:
    """A recipient's public key in a GnuPG home of its own; `close` removes the home."""

    def __init__(self, options: PgpOptions, *, where: str, environ: Mapping[str, str]) -> None:
        self.armor = options.armor
        # Imported here, a tenth of a second: only a delivery that encrypts pays for it.
        import gnupg

        self._home = tempfile.mkdtemp(prefix="audience-gnupg-")
        try:
            self._gpg = gnupg.GPG(gnupghome=self._home)
            self.fingerprint = self._import(_key_text(options, where, environ), where)
        except BaseException:
            self.close()
            raise

    def _import(self, text: str, where: str) -> str:
        imported = self._gpg.import_keys(text)
        if self._gpg.list_keys(secret=True):
            raise TerminalDeliveryError(
                f"{where}: this is a private key; give the recipient's public key only"
            )
        keys = self._gpg.list_keys()
        if not imported.fingerprints or not keys:
            raise TerminalDeliveryError(f"{where}: not a PGP public key")
        if len(keys) > 1:
            raise TerminalDeliveryError(f"{where}: holds {len(keys)} keys; give exactly one")
        (key,) = keys
        now = time.time()
        usable = [
            k
            for k in (key, *key.get("subkey_info", {}).values())
            if "e" in str(k.get("cap", "")).lower()
            and not (k.get("expires") and float(k["expires"]) <= now)
            and k.get("trust") not in {"r", "e"}
        ]
        if key.get("trust") == "r":
            raise TerminalDeliveryError(f"{where}: the key {key['keyid']} is revoked")
        if key.get("expires") and float(key["expires"]) <= now:
            raise TerminalDeliveryError(
                f"{where}: the key {key['keyid']} expired on "
                f"{time.strftime('%Y-%m-%d', time.gmtime(float(key['expires'])))}"
            )
        if not usable:
            raise TerminalDeliveryError(
                f"{where}: the key {key['keyid']} has no valid key for encryption "
                "(expired, revoked or signing-only)"
            )
        return str(key["fingerprint"])

    def encrypt(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The chunks, encrypted to the recipient."""
        reader = _ChunkReader(chunks)
        descriptor, path = tempfile.mkstemp(prefix="audience-encrypted-", dir=self._home)
        os.close(descriptor)
        try:
            result = self._gpg.encrypt_file(
                reader,
                [self.fingerprint],
                armor=self.armor,
                always_trust=True,  # the one key in this home is the one the user named
                output=path,
            )
            if reader.error is not None:
                raise reader.error
            if not result.ok:
                raise TerminalDeliveryError(f"PGP encryption failed: {result.status}")
            with open(path, "rb") as encrypted:
                while block := encrypted.read(_READ):
                    yield block
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def close(self) -> None:
        """Remove the GnuPG home and everything in it."""
        shutil.rmtree(self._home, ignore_errors=True)


def _key_text(options: PgpOptions, where: str, environ: Mapping[str, str]) -> str:
    if options.public_key is not None:
        return expand(
            options.public_key, field="file.pgp.public_key", destination=where, environ=environ
        )
    path = Path(
        expand(
            options.public_key_file or "",
            field="file.pgp.public_key_file",
            destination=where,
            environ=environ,
        )
    ).expanduser()
    try:
        return path.read_text("utf-8", errors="replace")
    except OSError as error:
        raise TerminalDeliveryError(
            f"{where}: cannot read the public key file {path}: {error.strerror}"
        ) from None


def check_recipient(
    options: PgpOptions, *, where: str, environ: Mapping[str, str] | None = None
) -> None:
    """Raise TerminalDeliveryError if the options' key cannot be encrypted to (not a public
    key, expired, revoked, a private key)."""
    Recipient(options, where=where, environ=os.environ if environ is None else environ).close()


def check_key(destination: Destination) -> None:
    """When a destination is applied: a PGP key written into its definition (or a file it
    names) must be one files can be encrypted to (InvalidValue naming `file.pgp` otherwise);
    a key in a `${VAR}` is checked when the destination is used."""
    pgp = destination.file.pgp
    if pgp is None or references(pgp.public_key or pgp.public_key_file or ""):
        return
    try:
        check_recipient(pgp, where=f"destination {destination.name!r}")
    except TerminalDeliveryError as error:
        raise InvalidValue(str(error), field="file.pgp") from None
