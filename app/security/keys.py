"""The API keys the gateway accepts: `API_KEYS` (no owner, limits from `RATE_LIMIT_RPM` and
`RATE_LIMIT_TPM`) and `API_KEYS_FILE` (JSON or YAML), which holds only the keys' hashes:

    - hash: sha256:<64 hex digits>
      owner: alice        # null: a service key, acting for the user each request names
      rpm: 60             # requests per minute; null or absent: unlimited
      tpm: 100000         # tokens per minute; null or absent: unlimited
      rag: false          # chats not grounded in documents and memories; absent: true
      name: laptop        # optional label
      created: "..."      # optional, written by `python -m app keys create`

A `{"keys": [...]}` mapping holds the same list. A bad file is a `ConfigError` naming the file and
the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from app.config import ConfigError, SecuritySettings
from app.security.identity import Identity

DEFAULT_KEYS_FILE = "keys.yaml"
"""The keys file's name in DATA_DIR, used when API_KEYS_FILE is unset."""
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
_FIELDS = frozenset({"hash", "owner", "rpm", "tpm", "rag", "name", "created"})
KEY_ID_LENGTH = 12


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

    @property
    def key_id(self) -> str:
        return key_id(self.digest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": f"sha256:{self.digest.hex()}",
            "owner": self.owner,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "rag": self.rag,
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
    unknown = sorted(str(name) for name in raw.keys() - _FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {', '.join(unknown)} "
            f"(allowed: hash, owner, rpm, tpm, rag, name, created)"
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
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def keys_file(settings: SecuritySettings, data_dir: Path) -> Path | None:
    """The keys file the gateway reads: API_KEYS_FILE, else DATA_DIR/keys.yaml if it exists
    (where `python -m app keys create` puts keys by default), else none."""
    if settings.api_keys_file is not None:
        return settings.api_keys_file
    default = data_dir / DEFAULT_KEYS_FILE
    return default if default.exists() else None


class KeyStore:
    """Every accepted key's sha256 with the identity it grants."""

    def __init__(self, entries: list[tuple[bytes, Identity]]) -> None:
        self._entries = entries

    @classmethod
    def from_settings(cls, settings: SecuritySettings, path: Path | None) -> KeyStore:
        """The keys of API_KEYS and of the keys file at `path` (see `keys_file`)."""
        entries: dict[bytes, Identity] = {}
        for key in settings.api_keys:
            key_digest = digest(key)
            entries[key_digest] = Identity(
                key_id=key_id(key_digest),
                owner=None,
                rpm=settings.rate_limit_rpm,
                tpm=settings.rate_limit_tpm,
            )
        if path is not None:
            for number, entry in enumerate(read_key_file(path), 1):
                if entry.digest in entries:
                    raise ConfigError(
                        f"keys file {path}, entry {number}: the key is in API_KEYS too"
                    )
                entries[entry.digest] = Identity(
                    key_id=entry.key_id,
                    owner=entry.owner,
                    rpm=entry.rpm,
                    tpm=entry.tpm,
                    rag=entry.rag,
                )
        return cls(list(entries.items()))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def limited(self) -> bool:
        """Whether any key has a limit."""
        return any(i.rpm is not None or i.tpm is not None for _, i in self._entries)

    def lookup(self, token: bytes) -> Identity | None:
        """The identity of the key whose sha256 matches the token's. Every entry is compared in
        constant time, without stopping at a match, so timing tells nothing about the keys."""
        token_digest = hashlib.sha256(token).digest()
        found = None
        for key_digest, identity in self._entries:
            if hmac.compare_digest(token_digest, key_digest):
                found = identity
        return found
