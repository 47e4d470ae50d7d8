"""KeyStore: API_KEYS and API_KEYS_FILE (JSON or YAML) give identities; bad files are named."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import ConfigError, Settings
from app.security.identity import Identity
from app.security.keys import KeyEntry, KeyStore, keys_file, read_key_file, write_key_file
from tests.conftest import gateway_settings


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def entry(key: str, **fields: Any) -> dict[str, Any]:
    return {"hash": f"sha256:{sha(key)}", "owner": None, **fields}


def write(path: Path, data: Any) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def sections_keys_file(settings: Settings) -> Path | None:
    return keys_file(settings.security, settings.server.data_dir)


def store(**settings: Any) -> KeyStore:
    values = gateway_settings(**settings)
    return KeyStore.from_settings(values.security, values.server.data_dir)


def test_api_keys_have_no_owner_and_the_rate_limit_settings() -> None:
    keys = store(api_keys=["k1", "k2"], rate_limit_rpm=60, rate_limit_tpm=1000)
    assert keys.lookup(b"k1") == Identity(key_id=sha("k1")[:12], owner=None, rpm=60, tpm=1000)
    assert keys.lookup(b"k2") == Identity(key_id=sha("k2")[:12], owner=None, rpm=60, tpm=1000)
    assert keys.lookup(b"k3") is None
    assert keys.lookup(b"") is None
    assert not keys.open


def test_the_keys_file_is_api_keys_file_else_data_dirs_keys_yaml(tmp_path: Path) -> None:
    assert sections_keys_file(gateway_settings(data_dir=tmp_path)) is None
    default = write(tmp_path / "keys.yaml", [entry("k", owner="alice")])
    assert sections_keys_file(gateway_settings(data_dir=tmp_path)) == default
    assert store(data_dir=tmp_path).lookup(b"k") == Identity(key_id=sha("k")[:12], owner="alice")
    other = write(tmp_path / "other.json", [entry("o")])
    assert sections_keys_file(gateway_settings(data_dir=tmp_path, api_keys_file=other)) == other
    assert store(data_dir=tmp_path, api_keys_file=other).lookup(b"k") is None


def test_api_keys_are_unlimited_without_rate_limit_settings() -> None:
    keys = store(api_keys=["k1"])
    assert keys.lookup(b"k1") == Identity(key_id=sha("k1")[:12], owner=None)


@pytest.mark.parametrize("name", ["keys.json", "keys.yaml", "keys.yml"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["list", "mapping"])
def test_a_keys_file_gives_owners_and_limits(tmp_path: Path, name: str, wrapped: bool) -> None:
    items = [
        entry("alice-key", owner="alice", rpm=10, tpm=5000, name="laptop"),
        entry("service-key", rpm=None),
    ]
    path = write(tmp_path / name, {"keys": items} if wrapped else items)
    keys = store(api_keys=["plain"], api_keys_file=path)
    assert len(keys) == 3
    alice = keys.lookup(b"alice-key")
    assert alice == Identity(key_id=sha("alice-key")[:12], owner="alice", rpm=10, tpm=5000)
    service = keys.lookup(b"service-key")
    assert service == Identity(key_id=sha("service-key")[:12], owner=None)
    assert keys.lookup(b"plain") is not None
    assert keys.lookup(sha("alice-key").encode()) is None  # the hash is not the key


def test_a_key_id_is_a_hash_prefix_not_the_key(tmp_path: Path) -> None:
    key = "gk-0123456789abcdef"
    keys = store(api_keys=[key])
    identity = keys.lookup(key.encode())
    assert identity is not None
    assert identity.key_id is not None
    assert len(identity.key_id) == 12
    assert identity.key_id not in key
    assert sha(key).startswith(identity.key_id)


def test_uppercase_hex_and_unquoted_yaml_timestamps_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"- hash: SHA256:{sha('k').upper()}\n  owner: bob\n  created: 2025-01-02T03:04:05Z\n",
        encoding="utf-8",
    )
    [only] = read_key_file(path)
    assert only.owner == "bob"
    assert only.created == "2025-01-02T03:04:05+00:00"
    assert store(api_keys_file=path).lookup(b"k") is not None


@pytest.mark.parametrize("text", ["", "\n", "# no keys yet\n"])
def test_an_empty_yaml_file_holds_no_key(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text, encoding="utf-8")
    keys = store(api_keys_file=path)
    assert len(keys) == 0
    assert keys.lookup(b"") is None


def test_write_then_read_round_trips_and_a_new_file_is_private(tmp_path: Path) -> None:
    for name in ("keys.json", "keys.yaml"):
        path = tmp_path / "sub" / name
        entries = [
            KeyEntry(hashlib.sha256(b"a").digest(), "alice", 1, 2, "n", "2025-01-01T00:00:00Z"),
            KeyEntry(hashlib.sha256(b"b").digest(), None),
        ]
        write_key_file(path, entries)
        assert path.stat().st_mode & 0o777 == 0o600
        assert read_key_file(path) == entries
        path.chmod(0o640)
        write_key_file(path, entries[:1])
        assert path.stat().st_mode & 0o777 == 0o640
        assert read_key_file(path) == entries[:1]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["keys.json", "keys.yaml"]


GOOD = f"sha256:{'a' * 64}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hash": GOOD, "owner": "x"}, "must hold a list of keys"),
        (["sha256:abc"], "entry 1: must be a mapping with hash and owner"),
        ([{"owner": "x"}], "entry 1: hash must be 'sha256:' and 64 hex digits (got None)"),
        ([{"hash": "a" * 64, "owner": "x"}], "entry 1: hash must be 'sha256:'"),
        ([{"hash": "sha256:abc", "owner": "x"}], "entry 1: hash must be 'sha256:'"),
        ([{"hash": GOOD}], "entry 1: owner is missing (null makes a service key"),
        ([{"hash": GOOD, "owner": ""}], "entry 1: owner must be a non-empty string or null"),
        ([{"hash": GOOD, "owner": 5}], "entry 1: owner must be a non-empty string or null"),
        ([{"hash": GOOD, "owner": "x", "rpm": 0}], "entry 1: rpm must be a positive integer"),
        ([{"hash": GOOD, "owner": "x", "tpm": -5}], "entry 1: tpm must be a positive integer"),
        ([{"hash": GOOD, "owner": "x", "rpm": "10"}], "entry 1: rpm must be a positive integer"),
        ([{"hash": GOOD, "owner": "x", "rpm": True}], "entry 1: rpm must be a positive integer"),
        ([{"hash": GOOD, "owner": "x", "rpm": 1.5}], "entry 1: rpm must be a positive integer"),
        ([{"hash": GOOD, "owner": "x", "rmp": 10}], "entry 1: unknown field rmp"),
        ([{"hash": GOOD, "owner": "x", "key": "secret"}], "entry 1: unknown field key"),
        (
            [{"hash": GOOD, "owner": "x"}, {"hash": GOOD.upper(), "owner": "y"}],
            "entry 2: the same hash as entry 1",
        ),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_bad_entry_is_named(tmp_path: Path, suffix: str, data: Any, message: str) -> None:
    path = write(tmp_path / f"keys{suffix}", data)
    with pytest.raises(ConfigError) as info:
        store(api_keys_file=path)
    assert f"keys file {path}" in str(info.value)
    assert message in str(info.value)


def test_a_key_both_in_api_keys_and_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.json", [entry("other", owner="o"), entry("k1", owner="a")])
    with pytest.raises(ConfigError, match=r"entry 2: the key is in API_KEYS too"):
        store(api_keys=["k1"], api_keys_file=path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("keys.json", "[{", "is not valid JSON"),
        ("keys.yaml", "- hash: [\n", "is not valid YAML"),
        ("keys.toml", "", "the name must end in .json, .yaml or .yml"),
    ],
)
def test_an_unreadable_file_is_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        store(api_keys_file=path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot be read: No such file or directory") as info:
        store(api_keys_file=path)
    assert str(path) in str(info.value)


def test_admin_is_a_role_of_file_keys_and_of_admin_api_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "keys.yaml", [entry("boss", admin=True), entry("worker", rpm=5)])
    assert [e.admin for e in read_key_file(path)] == [True, False]
    keys = store(api_keys=["plain"], admin_api_keys=["root"], api_keys_file=path)
    assert [(k, keys.lookup(k.encode())) for k in ("boss", "worker", "plain", "root")] == [
        ("boss", Identity(key_id=sha("boss")[:12], owner=None, admin=True)),
        ("worker", Identity(key_id=sha("worker")[:12], owner=None, rpm=5)),
        ("plain", Identity(key_id=sha("plain")[:12], owner=None)),
        ("root", Identity(key_id=sha("root")[:12], owner=None, admin=True)),
    ]
    assert [(i.key_id, i.admin) for i in keys.fixed] == [
        (sha("plain")[:12], False),
        (sha("root")[:12], True),
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_keys": ["k"], "admin_api_keys": ["k"]}, "in both API_KEYS and ADMIN_API_KEYS"),
        ({"admin_api_keys": ["k"]}, "entry 1: the key is in ADMIN_API_KEYS too"),
    ],
)
def test_a_key_given_twice_is_refused(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    path = write(tmp_path / "keys.json", [entry("k")])
    with pytest.raises(ConfigError, match=message):
        store(api_keys_file=path, **settings)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_admin_must_be_true_or_false(tmp_path: Path, value: object) -> None:
    path = write(tmp_path / "keys.yaml", [entry("k", admin=value)])
    with pytest.raises(ConfigError, match="entry 1: admin must be true or false"):
        read_key_file(path)


def test_a_gateway_is_open_only_without_any_key_or_keys_file(tmp_path: Path) -> None:
    assert store(data_dir=tmp_path).open
    assert not store(data_dir=tmp_path, admin_api_keys=["root"]).open
    (tmp_path / "keys.yaml").write_text("", encoding="utf-8")
    empty = store(data_dir=tmp_path)
    assert not empty.open
    assert len(empty) == 0


def test_create_and_revoke_change_the_file_and_the_keys_at_once(tmp_path: Path) -> None:
    keys = store(data_dir=tmp_path / "state", api_keys=["plain"])
    new = KeyEntry(hashlib.sha256(b"new").digest(), "carol", rpm=9, admin=True)
    keys.create(new)
    path = tmp_path / "state" / "keys.yaml"
    assert keys.path == path
    assert read_key_file(path) == keys.entries == [new]
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.lookup(b"new") == new.identity
    assert keys.lookup(b"plain") is not None
    assert keys.revoke("0" * 12) is None
    assert read_key_file(path) == [new]
    assert keys.revoke(new.key_id) == new
    assert keys.lookup(b"new") is None
    assert read_key_file(path) == keys.entries == []
    assert keys.lookup(b"plain") is not None


def test_the_first_key_created_closes_an_open_gateway(tmp_path: Path) -> None:
    keys = store(data_dir=tmp_path)
    opened = [keys.open]
    keys.create(KeyEntry(hashlib.sha256(b"first").digest(), None, admin=True))
    opened.append(keys.open)
    assert keys.lookup(b"first") is not None
    keys.revoke(keys.entries[0].key_id)
    opened.append(keys.open)
    assert opened == [True, False, False]
    assert len(keys) == 0


def test_changes_by_another_writer_are_kept(tmp_path: Path) -> None:
    """A key added to the file since the store read it (the CLI's, or another gateway's) is
    kept, and accepted, when this store changes the file."""
    keys = store(data_dir=tmp_path)
    path = tmp_path / "keys.yaml"
    write(path, [entry("by-the-cli", owner="dave")])
    keys.create(KeyEntry(hashlib.sha256(b"over-http").digest(), "erin"))
    assert [e.owner for e in read_key_file(path)] == ["dave", "erin"]
    assert keys.lookup(b"by-the-cli") is not None


def test_concurrent_writers_lose_no_key(tmp_path: Path) -> None:
    """Two stores on one file (as two processes) creating keys from many threads at once: the
    file's lock orders them, and the file ends up with every key."""
    first, second = store(data_dir=tmp_path), store(data_dir=tmp_path)
    made = [KeyEntry(hashlib.sha256(str(n).encode()).digest(), f"u{n}") for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda e: (first if int(e.owner[1:]) % 2 else second).create(e), made))
    on_file = read_key_file(tmp_path / "keys.yaml")
    assert sorted(e.owner or "" for e in on_file) == sorted(e.owner or "" for e in made)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.yaml"]


def test_a_change_that_would_clash_with_a_fixed_key_leaves_the_file_alone(tmp_path: Path) -> None:
    keys = store(data_dir=tmp_path, api_keys=["fixed"])
    path = write(tmp_path / "keys.yaml", [entry("fixed")])
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="entry 1: the key is in API_KEYS too"):
        keys.create(KeyEntry(hashlib.sha256(b"other").digest(), None))
    assert path.read_text(encoding="utf-8") == before
    assert keys.lookup(b"other") is None
