"""Credentials at rest: round trip, rotation, wrong keys, purged payloads, and no plaintext leaks."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from actors.core.secret import Secret
from store.credentials import (
    Credentials,
    MemoryCredentialRows,
    PgCredentialRows,
    SecretsKeyError,
    Vault,
    load_master_key,
    parse_keys,
)

CANARY = Secret("canary-secret-7Q9XK2")


@pytest.fixture(params=["memory", "postgres"])
def rows(request):
    if request.param == "memory":
        return MemoryCredentialRows()
    return PgCredentialRows(request.getfixturevalue("db"))


def vault(*keys: bytes) -> Vault:
    return Vault(parse_keys(",".join(k.decode() for k in keys)))


async def test_secret_round_trip_and_destroy(rows):
    creds = Credentials(vault(Fernet.generate_key()), rows)
    await creds.put_secret("D1", "refresh_key", CANARY)
    assert await creds.secret("D1", "refresh_key") == CANARY
    assert await creds.secret("D1", "request_key") is None
    assert await creds.destroy_practice("D1") == 1
    assert await creds.secret("D1", "refresh_key") is None
    with pytest.raises(ValueError):
        await creds.put_secret("D1", "password", Secret("x"))


async def test_rotation_re_encrypts_so_the_old_key_can_go(rows):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    await Credentials(vault(old), rows).put_secret("D1", "secret_key", CANARY)
    sealed = await Credentials(vault(old), rows).seal_payload("w1", b'{"patient_id":"1"}')
    rotating = Credentials(vault(new, old), rows)
    assert await rotating.rotate() == 2
    after = Credentials(vault(new), rows)
    assert await after.secret("D1", "secret_key") == CANARY
    assert await after.open_payload("w1", sealed) == b'{"patient_id":"1"}'
    with pytest.raises(SecretsKeyError, match="does not decrypt"):
        await Credentials(vault(old), rows).secret("D1", "secret_key")


async def test_a_wrong_key_is_a_clear_error_at_start(rows):
    await Credentials(vault(Fernet.generate_key()), rows).put_secret("D1", "secret_key", CANARY)
    with pytest.raises(SecretsKeyError, match="SIKKA_SECRETS_KEY does not decrypt"):
        await Credentials(vault(Fernet.generate_key()), rows).verify()


def test_malformed_keys_are_named():
    with pytest.raises(SecretsKeyError, match="Fernet keys"):
        parse_keys("not-a-key")
    with pytest.raises(SecretsKeyError, match="empty"):
        parse_keys(" , ")


def test_key_file_is_created_private_and_reused(tmp_path, capsys):
    first = load_master_key(None, tmp_path)
    assert "warning" in capsys.readouterr().err
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    token = first.encrypt(b"x")
    assert load_master_key(None, tmp_path).decrypt(token) == b"x"


async def test_purged_payload_reads_as_purged(rows):
    creds = Credentials(vault(Fernet.generate_key()), rows)
    sealed = {w: await creds.seal_payload(w, w.encode()) for w in ("w1", "w2")}
    assert CANARY.reveal() not in "".join(sealed.values())
    assert await creds.purge_payloads(["w1"]) == 1
    assert await creds.open_payloads(sealed) == {"w1": None, "w2": b"w2"}


async def test_stored_rows_hold_no_plaintext(rows):
    creds = Credentials(vault(Fernet.generate_key()), rows)
    await creds.put_secret("D1", "request_key", CANARY)
    await creds.seal_payload("w1", f'{{"firstname":"{CANARY.reveal()}"}}'.encode())
    stored = await rows.get("request_key", ["D1"])
    stored.update(await rows.get("payload_key", ["w1"]))
    assert stored and all(CANARY.reveal() not in ct for ct in stored.values())


async def test_digest_is_keyed_stable_and_survives_a_restart(rows):
    key = Fernet.generate_key()
    first = Credentials(vault(key), rows)
    d1 = await first.digest(b'{"patient_id":"1"}')
    assert d1 == await first.digest(b'{"patient_id":"1"}') != await first.digest(b'{"patient_id":"2"}')
    import hashlib

    assert d1 != hashlib.sha256(b'{"patient_id":"1"}').hexdigest()  # keyed, not a plain hash
    assert await Credentials(vault(key), rows).digest(b'{"patient_id":"1"}') == d1


async def test_concurrent_first_digests_agree_on_one_key(rows):
    """Regression: two supervisors digesting at once on a fresh database each stored a key of
    their own (last writer won), so replays of the same payload were refused as conflicts."""
    import trio

    key = Fernet.generate_key()
    instances = [Credentials(vault(key), rows) for _ in range(4)]
    digests = []

    async def first_digest(creds):
        digests.append(await creds.digest(b"same payload"))

    async with trio.open_nursery() as nursery:
        for creds in instances:
            nursery.start_soon(first_digest, creds)
    assert len(set(digests)) == 1
    assert await Credentials(vault(key), rows).digest(b"same payload") == digests[0]
