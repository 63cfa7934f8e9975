"""Signed checkpoints of the ledger's hash chain: evidence outside the database.

The chain shows a row edited behind the ledger's back, but not the chain re-hashed from that row
on with the project's own functions, nor its newest entries removed with the head moved back.
A checkpoint is the chain head signed with an Ed25519 key the database does not hold: {seq, head
hash, journal entries up to it, time, key id, signature}. Whoever books makes them (the workers,
every so many entries or minutes: :class:`CheckpointSchedule`, :func:`make_checkpoint`) and
publishes them (the ``ledger-checkpoints`` topic, every export, the console); ``subsidy ledger
verify --checkpoints SOURCE`` checks the chain against each. What was booked after the last
checkpoint is covered by none: its size is reported, bounded by the checkpoint interval.
WHY: docs/decisions/0013-signed-checkpoints-of-one-hash-chain.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sinks.ledger.booking import canonical_json
from sinks.ledger.database import LedgerDatabase, LedgerError
from sinks.ledger.schema import chain_head, journal

#: a file holding the private key that signs checkpoints (``subsidy ledger keygen`` writes one)
KEY_ENV = "SUBSIDY_CHECKPOINT_KEY"
#: a file holding the public key that checks them (default: the private key's ``.pub`` beside it)
PUBLIC_KEY_ENV = "SUBSIDY_CHECKPOINT_PUBLIC_KEY"
#: where exports and the console read the newest published checkpoint: a file of JSON lines or kafka://HOST:PORT
CHECKPOINTS_ENV = "SUBSIDY_CHECKPOINTS"
CHECKPOINTS_TOPIC = "ledger-checkpoints"  # streams/topics.py creates it with its settings


class CheckpointError(LedgerError):
    """A key or a checkpoint that cannot be read."""


# -- keys --------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key: which key signed a checkpoint."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    key_id: str

    @classmethod
    def load(cls, path: str | Path) -> "SigningKey":
        try:
            loaded = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except OSError as error:
            raise CheckpointError(f"cannot read the checkpoint key {path}: {error.strerror}") from None
        except ValueError:
            raise CheckpointError(f"{path} is not a PEM private key: `subsidy ledger keygen --out FILE` makes one") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise CheckpointError(f"{path} is not an Ed25519 key: `subsidy ledger keygen --out FILE` makes one")
        return cls(loaded, key_id(loaded.public_key()))


def generate_key(path: str | Path) -> str:
    """Write a new private key to ``path`` (readable by its owner only) and its public key to
    ``path.pub``; returns the key id. An existing file is never overwritten."""
    target = Path(path)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CheckpointError(f"{target} exists: a checkpoint key is never overwritten (the checkpoints it signed would no longer verify)") from None
    except OSError as error:
        raise CheckpointError(f"cannot write {target}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    Path(f"{target}.pub").write_bytes(public)
    return key_id(key.public_key())


def load_public_keys(paths: Iterable[str | Path]) -> dict[str, Ed25519PublicKey]:
    """key id -> public key, from PEM files of public keys (or of private keys: their public half)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise CheckpointError(f"cannot read the checkpoint key {path}: {error.strerror}") from None
        try:
            loaded: Any = serialization.load_pem_public_key(data)
        except ValueError:
            try:
                loaded = serialization.load_pem_private_key(data, password=None).public_key()
            except ValueError:
                raise CheckpointError(f"{path} is not a PEM key") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise CheckpointError(f"{path} is not an Ed25519 key")
        keys[key_id(loaded)] = loaded
    return keys


def public_key_paths(given: str | None = None) -> list[str]:
    """The public key that checks checkpoints: ``--public-key``, else $SUBSIDY_CHECKPOINT_PUBLIC_KEY,
    else the ``.pub`` beside $SUBSIDY_CHECKPOINT_KEY, else the private key itself."""
    if given or os.environ.get(PUBLIC_KEY_ENV):
        return [given or os.environ[PUBLIC_KEY_ENV]]
    private = os.environ.get(KEY_ENV)
    if not private:
        return []
    return [f"{private}.pub" if Path(f"{private}.pub").is_file() else private]


# -- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    head_hash: str
    entries: int  # journal entries up to seq
    time: str  # UTC, RFC 3339
    key_id: str
    signature: str  # base64 of the Ed25519 signature of signed_text()

    def signed_text(self) -> bytes:
        return canonical_json({"seq": self.seq, "head_hash": self.head_hash, "entries": self.entries, "time": self.time, "key_id": self.key_id}).encode()

    def to_json(self) -> str:
        return canonical_json(asdict(self))

    def to_text(self) -> str:
        """One line for a file's header or trailer."""
        return f"ledger checkpoint seq={self.seq} head={self.head_hash} entries={self.entries} time={self.time} key={self.key_id} signature={self.signature}"

    @classmethod
    def from_dict(cls, data: Any) -> "Checkpoint":
        try:
            checkpoint = cls(int(data["seq"]), str(data["head_hash"]), int(data["entries"]), str(data["time"]), str(data["key_id"]), str(data["signature"]))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"not a checkpoint ({error.__class__.__name__}: {error}): {json.dumps(data, ensure_ascii=False)[:200]}") from None
        return checkpoint

    def signed_by(self, keys: dict[str, Ed25519PublicKey]) -> str | None:
        """None when a key of ``keys`` signed it; else why not."""
        key = keys.get(self.key_id)
        if key is None:
            return f"checkpoint at seq {self.seq}: signed by key {self.key_id}, which is not a key given to check it"
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_text())
        except (InvalidSignature, ValueError):
            return f"checkpoint at seq {self.seq}: its signature does not verify with key {self.key_id}: the checkpoint was altered"
        return None


def sign(seq: int, head_hash: str, entries: int, key: SigningKey, now: dt.datetime | None = None) -> Checkpoint:
    moment = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    unsigned = Checkpoint(seq, head_hash, entries, moment, key.key_id, "")
    signature = base64.b64encode(key.private_key.sign(unsigned.signed_text())).decode()
    return Checkpoint(seq, head_hash, entries, moment, key.key_id, signature)


def make_checkpoint(ledger: LedgerDatabase, key: SigningKey, now: dt.datetime | None = None) -> Checkpoint:
    """The ledger's chain head, signed: read with its count of journal entries in one transaction."""
    with ledger.engine.connect() as conn:
        head = conn.execute(sa.select(chain_head.c.seq, chain_head.c.head_hash).where(chain_head.c.id == 1)).one()
        entries = conn.execute(sa.select(sa.func.count()).select_from(journal).where(journal.c.seq <= head.seq)).scalar_one()
    return sign(int(head.seq), head.head_hash, int(entries), key, now)


def current_checkpoint(ledger: LedgerDatabase) -> Checkpoint | None:
    """What an export carries and the console shows: the head signed now with $SUBSIDY_CHECKPOINT_KEY,
    else the newest checkpoint of $SUBSIDY_CHECKPOINTS, else None."""
    if os.environ.get(KEY_ENV):
        return make_checkpoint(ledger, SigningKey.load(os.environ[KEY_ENV]))
    if os.environ.get(CHECKPOINTS_ENV):
        return max(read_checkpoints(os.environ[CHECKPOINTS_ENV]), key=lambda c: (c.seq, c.time), default=None)
    return None


class CheckpointSchedule:
    """When a booker signs the head: ``every_entries`` chain entries since the last checkpoint it
    published, or ``every_seconds`` since then with anything new; so at most about that much is
    ever uncovered. ``due`` gives the checkpoint, ``published`` records it once it is out."""

    def __init__(self, key: SigningKey, every_entries: int, every_seconds: float):
        self.key = key
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self.last_seq: int | None = None
        self.last_time = 0.0

    def is_due(self, head_seq: int, now: float) -> bool:
        if head_seq == self.last_seq or (self.last_seq is None and head_seq == 0):
            return False
        return self.last_seq is None or head_seq - self.last_seq >= self.every_entries or now - self.last_time >= self.every_seconds

    def due(self, ledger: LedgerDatabase, now: float) -> Checkpoint | None:
        """The ledger's head signed, when a checkpoint is due (``now``: a monotonic clock); else None."""
        with ledger.engine.connect() as conn:
            head_seq = int(conn.execute(sa.select(chain_head.c.seq).where(chain_head.c.id == 1)).scalar_one())
        return make_checkpoint(ledger, self.key) if self.is_due(head_seq, now) else None

    def published(self, checkpoint: Checkpoint, now: float) -> None:
        self.last_seq, self.last_time = checkpoint.seq, now


# -- reading and checking ----------------------------------------------------------------------


def read_checkpoints(source: str) -> list[Checkpoint]:
    """Checkpoints from a file of JSON lines, or ``kafka://HOST:PORT`` (the ledger-checkpoints topic)."""
    if source.startswith("kafka://"):
        import asyncio

        return [Checkpoint.from_dict(json.loads(value)) for value in asyncio.run(_read_topic(source.removeprefix("kafka://")))]
    try:
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoints from {source}: {error.strerror}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(Checkpoint.from_dict(json.loads(line)))
            except json.JSONDecodeError as error:
                raise CheckpointError(f"{source} line {number}: not JSON ({error.msg})") from None
    return out


async def _read_topic(bootstrap: str, timeout: float = 15.0) -> list[bytes]:
    """Every record of the checkpoints topic, from its first to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
    from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50)
    values: list[bytes] = []
    try:
        import asyncio

        async with asyncio.timeout(timeout):
            await consumer.start()
            if CHECKPOINTS_TOPIC not in await consumer.topics():
                raise CheckpointError(f"no topic {CHECKPOINTS_TOPIC} at {bootstrap}: the workers create it")
            partitions = [TopicPartition(CHECKPOINTS_TOPIC, 0)]  # its one partition (streams/topics.py)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            quiet = 0
            while quiet < 2:  # to the end offsets, and one quiet poll more (a local broker may report them short)
                batch = await consumer.getmany(*partitions, timeout_ms=300)
                values.extend(record.value for records in batch.values() for record in records if record.value)
                reached = all([await consumer.position(tp) >= ends[tp] for tp in partitions])
                quiet = quiet + 1 if reached and not batch else 0
    except (KafkaError, TimeoutError, OSError) as error:
        raise CheckpointError(f"cannot read {CHECKPOINTS_TOPIC} from {bootstrap}: {error.__class__.__name__}") from None
    finally:
        await consumer.stop()
    return values


def against_checkpoints(checkpoints: list[Checkpoint], keys: dict[str, Ed25519PublicKey], head_seq: int, at: dict[int, tuple[str, int]]) -> tuple[list[str], list[str]]:
    """(problems, notes) of the chain (ending at ``head_seq``, with its hash and entry count at
    each checkpoint's seq in ``at``) against ``checkpoints``."""
    problems: list[str] = []
    signed = []
    for checkpoint in checkpoints:
        why = checkpoint.signed_by(keys)
        if why is None:
            signed.append(checkpoint)
        else:
            problems.append(why)
    for checkpoint in sorted(signed, key=lambda c: c.seq):
        where = f"checkpoint at seq {checkpoint.seq} of {checkpoint.time}"
        if checkpoint.seq > head_seq:
            problems.append(f"{where}: the chain ends at seq {head_seq}: {checkpoint.seq - head_seq} entries it covered were removed")
        elif checkpoint.seq not in at:
            problems.append(f"{where}: the chain has no entry at seq {checkpoint.seq}: entries were removed or renumbered")
        else:
            found_hash, found_entries = at[checkpoint.seq]
            if found_hash != checkpoint.head_hash:
                problems.append(f"{where}: head hash expected {checkpoint.head_hash}, found {found_hash}: an entry up to it was changed and the chain re-hashed")
            if found_entries != checkpoint.entries:
                problems.append(f"{where}: journal entries expected {checkpoint.entries}, found {found_entries}")
    notes = []
    if signed:
        last = max(c.seq for c in signed)
        if head_seq > last:
            notes.append(f"{head_seq - last} entries after the last checkpoint at seq {last} are not covered")
    elif not checkpoints:
        notes.append("no checkpoints given: the chain is checked against itself only")
    return problems, notes
