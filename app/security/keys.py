"""The API keys the gateway accepts: `API_KEYS` and `ADMIN_API_KEYS` (no owner, limits from
`RATE_LIMIT_RPM` and `RATE_LIMIT_TPM`) and the keys file (JSON or YAML: `API_KEYS_FILE`, else
DATA_DIR/keys.yaml), which holds only the keys' hashes:

    - hash: sha256:<64 hex digits>
      owner: alice        # null: a service key, acting for the user each request names
      rpm: 60             # requests per minute; null or absent: unlimited
      tpm: 100000         # tokens per minute; null or absent: unlimited
      rag: false          # chats not grounded in documents and memories; absent: true
      admin: true         # may use the admin routes (debug, cache, keys); absent: false
      name: laptop        # optional label
      created: "..."      # optional, written by `python -m app keys create`

A `{"keys": [...]}` mapping holds the same list. A bad file is a `ConfigError` naming the file and
the entry. The file's keys can change while the gateway runs (`KeyStore.create`, `.revoke`);
every change is read, made and written under a lock, so that none is lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from app.config import ConfigError, SecuritySettings
from app.security.identity import Identity

DEFAULT_KEYS_FILE = "keys.yaml"
"""The keys file's name in DATA_DIR, used when API_KEYS_FILE is unset."""
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
_FIELDS = ("hash", "owner", "rpm", "tpm", "rag", "admin", "name", "created")
KEY_ID_LENGTH = 12
KEY_PREFIX = "gk-"


def new_key() -> str:
    """A fresh random key, shown once to whoever creates it."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def created_now() -> str:
    """This moment, as the keys file keeps the time a key was created."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(key_digest: bytes) -> str:
    """The non-secret id of a key: the first hex digits of its sha256."""
    return key_digest.hex()[:KEY_ID_LENGTH]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key of a keys file; the key itself is never kept, only its sha256."""

    digest: bytes
    owner: str | None
    rpm: int | None = None
    tpm: int | None = None
    name: str | None = None
    created: str | None = None
    rag: bool = True
    admin: bool = False

    @property
    def key_id(self) -> str:
        return key_id(self.digest)

    @property
    def identity(self) -> Identity:
        return Identity(
            key_id=self.key_id,
            owner=self.owner,
            rpm=self.rpm,
            tpm=self.tpm,
            rag=self.rag,
            admin=self.admin,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": f"sha256:{self.digest.hex()}",
            "owner": self.owner,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "rag": self.rag,
            "admin": self.admin,
            "name": self.name,
            "created": self.created,
        }


def _is_yaml(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return False
    if suffix in (".yaml", ".yml"):
        return True
    raise ConfigError(f"keys file {path}: the name must end in .json, .yaml or .yml")


def _limit(value: object, field: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {field} must be a positive integer or null (got {value!r})")
    return value


def _flag(value: object, field: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {field} must be true or false (got {value!r})")
    return value


def _text(value: object, field: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {field} must be a non-empty string or null (got {value!r})")
    return value.strip()


def _entry(raw: object, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping with hash and owner (got {raw!r})")
    unknown = sorted(str(name) for name in raw.keys() - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {', '.join(unknown)} (allowed: {', '.join(_FIELDS)})"
        )
    match = _HASH.fullmatch(str(raw.get("hash", "")).strip().lower())
    if match is None:
        raise ConfigError(
            f"{where}: hash must be 'sha256:' and 64 hex digits (got {raw.get('hash')!r})"
        )
    if "owner" not in raw:
        raise ConfigError(
            f"{where}: owner is missing (null makes a service key, which acts for the user "
            "each request names)"
        )
    created = raw.get("created")
    if isinstance(created, date):  # an unquoted YAML timestamp
        created = created.isoformat()
    return KeyEntry(
        digest=bytes.fromhex(match.group(1)),
        owner=_text(raw["owner"], "owner", where),
        rpm=_limit(raw.get("rpm"), "rpm", where),
        tpm=_limit(raw.get("tpm"), "tpm", where),
        rag=_flag(raw.get("rag", True), "rag", where),
        admin=_flag(raw.get("admin", False), "admin", where),
        name=_text(raw.get("name"), "name", where),
        created=_text(created, "created", where),
    )


def read_key_file(path: Path) -> list[KeyEntry]:
    """The entries of a keys file; an empty file has none. `ConfigError` names the problem."""
    yaml_format = _is_yaml(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"keys file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) if yaml_format else (json.loads(text) if text.strip() else None)
    except (yaml.YAMLError, ValueError) as exc:
        kind = "YAML" if yaml_format else "JSON"
        raise ConfigError(f"keys file {path} is not valid {kind}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"keys"}:
        data = data["keys"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"keys file {path}: must hold a list of keys, or {{keys: [...]}}")
    entries: list[KeyEntry] = []
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(data, 1):
        entry = _entry(raw, f"keys file {path}, entry {number}")
        if entry.digest in seen:
            raise ConfigError(
                f"keys file {path}, entry {number}: the same hash as entry {seen[entry.digest]}"
            )
        seen[entry.digest] = number
        entries.append(entry)
    return entries


def write_key_file(path: Path, entries: list[KeyEntry]) -> None:
    """Replace the file atomically, in its format; a new file is readable by its owner only."""
    yaml_format = _is_yaml(path)
    items = [entry.to_dict() for entry in entries]
    if yaml_format:
        text = yaml.safe_dump(items, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(items, indent=2, ensure_ascii=False) + "\n"
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the keys file's directory (the file itself is replaced, not
    rewritten, so it cannot hold one), across threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update_key_file(
    path: Path, change: Callable[[list[KeyEntry]], list[KeyEntry]]
) -> list[KeyEntry]:
    """Read the keys file (none yet: no entries), `change` its entries and write them back when
    they changed, all under one lock; returns the entries the file now holds."""
    with _locked(path):
        entries = read_key_file(path) if path.exists() else []
        changed = change(entries)
        if changed != entries:
            write_key_file(path, changed)
        return changed


def key_file_path(settings: SecuritySettings, data_dir: Path) -> Path:
    """The keys file that `python -m app keys create` and the key routes write: API_KEYS_FILE,
    else DATA_DIR/keys.yaml."""
    return settings.api_keys_file or data_dir / DEFAULT_KEYS_FILE


def keys_file(settings: SecuritySettings, data_dir: Path) -> Path | None:
    """The keys file the gateway reads: API_KEYS_FILE, else DATA_DIR/keys.yaml if it exists
    (where `python -m app keys create` puts keys by default), else none."""
    path = key_file_path(settings, data_dir)
    return path if settings.api_keys_file is not None or path.exists() else None


class KeyStore:
    """Every accepted key's sha256 with the identity it grants: the fixed keys of API_KEYS and
    ADMIN_API_KEYS, and the `entries` of the keys file at `path`, which `create` and `revoke`
    change at once, the file first. `open`: no key is configured at all (no fixed key, no keys
    file), and every request is let through; the first key created closes the gateway."""

    def __init__(self, fixed: dict[bytes, Identity], path: Path, entries: list[KeyEntry]) -> None:
        self._fixed = fixed
        self.path = path
        self.open = not fixed and not path.exists()
        self._lock = threading.Lock()
        self._use(self._valid(entries))

    @classmethod
    def from_settings(cls, settings: SecuritySettings, data_dir: Path) -> KeyStore:
        """The keys of API_KEYS, ADMIN_API_KEYS and the keys file (see `keys_file`)."""
        fixed: dict[bytes, Identity] = {}
        for admin, keys in ((False, settings.api_keys), (True, settings.admin_api_keys)):
            for key in keys:
                key_digest = digest(key)
                if key_digest in fixed:
                    raise ConfigError("a key is in both API_KEYS and ADMIN_API_KEYS")
                fixed[key_digest] = Identity(
                    key_id=key_id(key_digest),
                    owner=None,
                    rpm=settings.rate_limit_rpm,
                    tpm=settings.rate_limit_tpm,
                    admin=admin,
                )
        path = keys_file(settings, data_dir)
        entries = read_key_file(path) if path is not None else []
        return cls(fixed, key_file_path(settings, data_dir), entries)

    def _valid(self, entries: list[KeyEntry]) -> list[KeyEntry]:
        """`entries`, unless one holds a fixed key (`ConfigError`)."""
        for number, entry in enumerate(entries, 1):
            fixed = self._fixed.get(entry.digest)
            if fixed is not None:
                setting = "ADMIN_API_KEYS" if fixed.admin else "API_KEYS"
                raise ConfigError(
                    f"keys file {self.path}, entry {number}: the key is in {setting} too"
                )
        return entries

    def _use(self, entries: list[KeyEntry]) -> None:
        """Accept the fixed keys and `entries` (the keys file's) from now on."""
        self.entries = entries
        self._accepted = [*self._fixed.items(), *((e.digest, e.identity) for e in entries)]

    def _update(self, change: Callable[[list[KeyEntry]], list[KeyEntry]]) -> None:
        with self._lock:  # the file's lock orders writes, this one what is used after them
            self._use(update_key_file(self.path, lambda entries: self._valid(change(entries))))

    def __len__(self) -> int:
        return len(self._accepted)

    @property
    def fixed(self) -> list[Identity]:
        """The identities of the keys of API_KEYS and ADMIN_API_KEYS."""
        return list(self._fixed.values())

    def create(self, entry: KeyEntry) -> None:
        """Add `entry` to the keys file, then accept its key (and no longer run open). Blocks
        on the file: call it in a thread."""
        self._update(lambda entries: [*entries, entry])
        self.open = False

    def revoke(self, revoked: str) -> KeyEntry | None:
        """Remove the key whose id is `revoked` from the keys file, then refuse it; None (and
        nothing changed) when the file holds no such key. Blocks on the file: call it in a
        thread."""
        found: list[KeyEntry] = []

        def without(entries: list[KeyEntry]) -> list[KeyEntry]:
            found.extend(e for e in entries if e.key_id == revoked)
            return [e for e in entries if e.key_id != revoked]

        self._update(without)
        return found[0] if found else None

    def lookup(self, token: bytes) -> Identity | None:
        """The identity of the key whose sha256 matches the token's. Every entry is compared in
        constant time, without stopping at a match, so timing tells nothing about the keys."""
        token_digest = hashlib.sha256(token).digest()
        found = None
        for key_digest, identity in self._accepted:
            if hmac.compare_digest(token_digest, key_digest):
                found = identity
        return found
