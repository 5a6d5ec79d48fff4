"""Secrets at rest: practice keys and per-writeback payload keys, encrypted (Fernet/MultiFernet).

Master keys come from ``SIKKA_SECRETS_KEY`` (a comma-separated list: the first encrypts, all
decrypt) or, when unset, from the key file ``SIKKA_DATA_DIR/secrets.key`` (created 0600 with a
warning). Rotation: put the new key first, run ``rotate()`` (re-encrypts every row under the first
key), then drop the old key from the list.

Rows of the ``credentials`` table (``kind``, ``owner``, ``ciphertext``):
- ``secret_key`` / ``request_key`` / ``refresh_key`` of a practice (owner = office_id);
- ``payload_key`` of a writeback (owner = writeback_id): a Fernet data key of its own that
  encrypts that writeback's payload in the event log. Destroying the row purges the payload
  (crypto-shredding) without editing the append-only log.

Nothing here is ever logged; plaintexts only leave through the return values, practice keys as
``Secret`` values (``actors.core.secret``: printed, they show ``[redacted]``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import trio
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from actors.core.secret import Secret
from actors.process import datadir
from store.db import Database

SECRET_KINDS = ("secret_key", "request_key", "refresh_key")
PAYLOAD_KEY = "payload_key"
DIGEST_KEY = ("digest_key", "*")  # one per installation: keys the payload digests
PURGED = "[purged]"


class SecretsKeyError(Exception):
    """The master key is malformed or does not decrypt what is stored; ``str()`` is one line."""


def parse_keys(text: str) -> MultiFernet:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise SecretsKeyError("SIKKA_SECRETS_KEY is empty")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError):
        raise SecretsKeyError(
            "SIKKA_SECRETS_KEY is not a comma-separated list of Fernet keys (32 url-safe base64 bytes each)"
        ) from None


def load_master_key(secrets_key: Secret | None, data_dir: Path) -> MultiFernet:
    """The configured keys, else the key file under ``data_dir`` (created on first use)."""
    if secrets_key:
        return parse_keys(secrets_key.reveal())
    path = datadir.prepare(data_dir) / "secrets.key"
    try:
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode())
            print(
                f"warning: SIKKA_SECRETS_KEY is not set; created the key file {path} (keep it apart from the database)",
                file=sys.stderr,
            )
        return parse_keys(path.read_text())
    except OSError as exc:
        raise SecretsKeyError(f"the key file {path}: {exc.strerror or exc}") from None
    except (SecretsKeyError, UnicodeDecodeError):
        raise SecretsKeyError(f"{path} does not hold a Fernet key") from None


class Vault:
    """Encryption under the master key(s)."""

    def __init__(self, keys: MultiFernet):
        self._keys = keys

    def encrypt(self, plaintext: str) -> str:
        return self._keys.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._keys.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretsKeyError(
                "SIKKA_SECRETS_KEY does not decrypt the stored credentials (wrong key, or the old key was dropped"
                " before rotation)"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        try:
            return self._keys.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretsKeyError("SIKKA_SECRETS_KEY does not decrypt a stored credential; rotation stopped") from None


class PgCredentialRows:
    """The ``credentials`` table."""

    def __init__(self, db: Database):
        self.db = db

    async def get(self, kind: str, owners: list[str]) -> dict[str, str]:
        def read(conn):
            rows = conn.execute(
                "SELECT owner, ciphertext FROM credentials WHERE kind = %s AND owner = ANY(%s)", (kind, owners)
            ).fetchall()
            return dict(rows)

        return await self.db.run(read)

    async def put(self, kind: str, owner: str, ciphertext: str) -> None:
        await self.db.run(
            lambda conn: conn.execute(
                "INSERT INTO credentials (kind, owner, ciphertext) VALUES (%s, %s, %s)"
                " ON CONFLICT (kind, owner) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, updated_at = now()",
                (kind, owner, ciphertext),
            )
        )

    async def put_if_absent(self, kind: str, owner: str, ciphertext: str) -> str:
        """Store ``ciphertext`` unless a row exists; return the row that won (first writer wins)."""

        def put(conn):
            conn.execute(
                "INSERT INTO credentials (kind, owner, ciphertext) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (kind, owner, ciphertext),
            )
            return conn.execute(
                "SELECT ciphertext FROM credentials WHERE kind = %s AND owner = %s", (kind, owner)
            ).fetchone()[0]

        return await self.db.run(put)

    async def delete(self, kinds: Iterable[str], owners: list[str]) -> int:
        kinds = list(kinds)
        return await self.db.run(
            lambda conn: conn.execute(
                "DELETE FROM credentials WHERE kind = ANY(%s) AND owner = ANY(%s)", (kinds, owners)
            ).rowcount
        )

    async def rewrite_all(self, transform) -> int:
        """Apply ``transform`` to every ciphertext in one transaction; return the rows rewritten."""

        def rewrite(conn):
            with conn.transaction():
                rows = conn.execute("SELECT kind, owner, ciphertext FROM credentials FOR UPDATE").fetchall()
                new = [(transform(ct), kind, owner) for kind, owner, ct in rows]
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE credentials SET ciphertext = %s, updated_at = now() WHERE kind = %s AND owner = %s", new
                    )
            return len(new)

        return await self.db.run(rewrite)

    async def sample(self) -> str | None:
        row = await self.db.run(lambda conn: conn.execute("SELECT ciphertext FROM credentials LIMIT 1").fetchone())
        return row[0] if row else None


class MemoryCredentialRows:
    """The same rows in a dict (tests and simulations)."""

    def __init__(self):
        self.rows: dict[tuple[str, str], str] = {}

    async def get(self, kind: str, owners: list[str]) -> dict[str, str]:
        await trio.lowlevel.checkpoint()
        return {o: self.rows[(kind, o)] for o in owners if (kind, o) in self.rows}

    async def put(self, kind: str, owner: str, ciphertext: str) -> None:
        await trio.lowlevel.checkpoint()
        self.rows[(kind, owner)] = ciphertext

    async def put_if_absent(self, kind: str, owner: str, ciphertext: str) -> str:
        await trio.lowlevel.checkpoint()
        return self.rows.setdefault((kind, owner), ciphertext)

    async def delete(self, kinds: Iterable[str], owners: list[str]) -> int:
        await trio.lowlevel.checkpoint()
        doomed = [(k, o) for k in kinds for o in owners if (k, o) in self.rows]
        for key in doomed:
            del self.rows[key]
        return len(doomed)

    async def rewrite_all(self, transform) -> int:
        await trio.lowlevel.checkpoint()
        new = {key: transform(ct) for key, ct in self.rows.items()}
        self.rows.update(new)
        return len(new)

    async def sample(self) -> str | None:
        await trio.lowlevel.checkpoint()
        return next(iter(self.rows.values()), None)


class Credentials:
    """Practice secrets and writeback payloads, encrypted at rest."""

    def __init__(self, vault: Vault, rows: PgCredentialRows | MemoryCredentialRows):
        self.vault = vault
        self.rows = rows
        self._digest_key: bytes | None = None

    async def verify(self) -> None:
        """Raise ``SecretsKeyError`` now, at start, if the key cannot read what is stored."""
        sample = await self.rows.sample()
        if sample is not None:
            self.vault.decrypt(sample)

    # practice secrets

    async def put_secret(self, office_id: str, kind: str, value: Secret) -> None:
        if kind not in SECRET_KINDS:
            raise ValueError(f"unknown secret kind {kind!r}")
        await self.rows.put(kind, office_id, self.vault.encrypt(value.reveal()))

    async def secret(self, office_id: str, kind: str) -> Secret | None:
        return (await self.secrets([office_id], kind)).get(office_id)

    async def secrets(self, office_ids: list[str], kind: str) -> dict[str, Secret]:
        """The practices' secrets of ``kind`` that are stored (one read for them all)."""
        found = await self.rows.get(kind, office_ids)
        return {office_id: Secret(self.vault.decrypt(ciphertext)) for office_id, ciphertext in found.items()}

    async def destroy_practice(self, office_id: str) -> int:
        return await self.rows.delete(SECRET_KINDS, [office_id])

    # payloads

    async def seal_payload(self, writeback_id: str, payload: bytes) -> str:
        """Encrypt ``payload`` under a new data key of its own; store the key; return the ciphertext."""
        data_key = Fernet.generate_key()
        await self.rows.put(PAYLOAD_KEY, writeback_id, self.vault.encrypt(data_key.decode()))
        return Fernet(data_key).encrypt(payload).decode()

    async def open_payloads(self, sealed: dict[str, str]) -> dict[str, bytes | None]:
        """Plaintexts of ``{writeback_id: ciphertext}``; ``None`` where the key was destroyed."""
        keys = await self.rows.get(PAYLOAD_KEY, list(sealed))
        opened: dict[str, bytes | None] = {}
        for writeback_id, ciphertext in sealed.items():
            key = keys.get(writeback_id)
            if key is None:
                opened[writeback_id] = None
                continue
            try:
                opened[writeback_id] = Fernet(self.vault.decrypt(key).encode()).decrypt(ciphertext.encode())
            except InvalidToken:
                raise SecretsKeyError(f"the payload of writeback {writeback_id} does not match its key") from None
        return opened

    async def open_payload(self, writeback_id: str, ciphertext: str) -> bytes | None:
        return (await self.open_payloads({writeback_id: ciphertext}))[writeback_id]

    async def purge_payloads(self, writeback_ids: list[str]) -> int:
        return await self.rows.delete([PAYLOAD_KEY], writeback_ids)

    # payload digests (idempotency comparisons without keeping plaintext)

    async def digest(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` under the installation's digest key (created on first use),
        so a digest in the log cannot be brute-forced from guessable patient data."""
        if self._digest_key is None:
            kind, owner = DIGEST_KEY
            found = await self.rows.get(kind, [owner])
            stored = found.get(owner) or await self.rows.put_if_absent(
                kind, owner, self.vault.encrypt(os.urandom(32).hex())
            )
            self._digest_key = bytes.fromhex(self.vault.decrypt(stored))
        return hmac.new(self._digest_key, data, hashlib.sha256).hexdigest()

    # rotation

    async def rotate(self) -> int:
        """Re-encrypt every row under the first master key; return how many rows."""
        return await self.rows.rewrite_all(self.vault.rotate)
