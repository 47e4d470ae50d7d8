"""The key routes (admin keys only): GET /v1/keys lists, POST /v1/keys creates (the key shown
once, accepted at once), DELETE /v1/keys/{id} revokes (refused at once); the keys file is
written atomically and stays valid; bad input is an OpenAI-shaped 400."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.security.keys import read_key_file
from tests.conftest import MakeGateway

ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@pytest.fixture
def url(make_gateway: MakeGateway, tmp_path: Path) -> str:
    """A gateway with an ordinary and an admin key from the environment, whose keys file is
    DATA_DIR/keys.yaml (not there yet)."""
    return make_gateway(api_keys=["user-key"], admin_api_keys=["admin-key"], data_dir=tmp_path)


def create(url: str, headers: dict[str, str] | None = ADMIN, **body: Any) -> dict[str, Any]:
    resp = httpx.post(f"{url}/v1/keys", json={"owner": None, **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def listed(url: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/v1/keys", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "list"
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def models(url: str, key: str) -> int:
    return httpx.get(f"{url}/v1/models", headers=bearer(key)).status_code


def test_a_created_key_works_at_once_and_is_shown_once(url: str, tmp_path: Path) -> None:
    made = create(url, owner="alice", name="laptop", rpm=60, tpm=1000, rag=False)
    key = made.pop("key")
    assert key.startswith("gk-")
    assert models(url, key) == 200
    assert made == {
        "object": "key",
        "key_id": key_id(key),
        "owner": "alice",
        "name": "laptop",
        "rpm": 60,
        "tpm": 1000,
        "rag": False,
        "admin": False,
        "created": made["created"],
        "source": "file",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", made["created"])
    [entry] = read_key_file(tmp_path / "keys.yaml")
    assert (entry.key_id, entry.owner, entry.rpm, entry.tpm, entry.rag) == (
        key_id(key),
        "alice",
        60,
        1000,
        False,
    )
    assert (tmp_path / "keys.yaml").stat().st_mode & 0o777 == 0o600
    assert key not in (tmp_path / "keys.yaml").read_text(encoding="utf-8")
    assert made in listed(url)


def test_the_list_shows_every_key_and_never_a_key_or_its_hash(url: str) -> None:
    key = create(url, owner="bob", admin=True)["key"]
    data = listed(url)
    assert [(k["key_id"], k["source"], k["admin"]) for k in data] == [
        (key_id(key), "file", True),
        (key_id("user-key"), "env", False),
        (key_id("admin-key"), "env", True),
    ]
    text = httpx.get(f"{url}/v1/keys", headers=ADMIN).text
    for secret in (key, "user-key", "admin-key"):
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    assert "sha256" not in text
    fields = {"object", "key_id", "owner", "name", "rpm", "tpm", "rag", "admin", "created"}
    assert all(set(k) == fields | {"source"} for k in data)


def test_a_revoked_key_is_refused_at_once(url: str, tmp_path: Path) -> None:
    kept, revoked = (create(url, owner=owner)["key"] for owner in ("carol", "dave"))
    assert models(url, revoked) == 200
    resp = httpx.delete(f"{url}/v1/keys/{key_id(revoked)}", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id": key_id(revoked), "object": "key.deleted", "deleted": True}
    refused = httpx.get(f"{url}/v1/models", headers=bearer(revoked))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert models(url, kept) == 200
    assert [e.owner for e in read_key_file(tmp_path / "keys.yaml")] == ["carol"]
    assert [k["owner"] for k in listed(url) if k["source"] == "file"] == ["carol"]
    again = httpx.delete(f"{url}/v1/keys/{key_id(revoked)}", headers=ADMIN)
    assert again.status_code == 404
    assert again.json()["error"] == {
        "message": f"no key '{key_id(revoked)}' in the keys file",
        "type": "invalid_request_error",
        "param": "key_id",
        "code": "not_found",
    }


@pytest.mark.parametrize(
    ("key_id", "status", "param"),
    [("0123456789ab", 404, "key_id"), ("xyz", 400, "key_id"), ("0123456789ABC", 400, "key_id")],
)
def test_revoking_an_unknown_or_malformed_id(
    url: str, key_id: str, status: int, param: str
) -> None:
    resp = httpx.delete(f"{url}/v1/keys/{key_id}", headers=ADMIN)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param


def test_the_environments_keys_cannot_be_revoked_here(url: str) -> None:
    resp = httpx.delete(f"{url}/v1/keys/{key_id('user-key')}", headers=ADMIN)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "key_id"
    assert "API_KEYS or ADMIN_API_KEYS" in error["message"]
    assert models(url, "user-key") == 200


def test_an_admin_key_made_here_may_manage_keys_at_once(url: str) -> None:
    boss = create(url, owner="erin", admin=True)["key"]
    worker = create(url, headers=bearer(boss), owner="frank")["key"]
    assert httpx.get(f"{url}/debug/routes", headers=bearer(boss)).status_code == 200
    assert httpx.get(f"{url}/debug/routes", headers=bearer(worker)).status_code == 403
    resp = httpx.delete(f"{url}/v1/keys/{key_id(boss)}", headers=bearer(boss))
    assert resp.status_code == 200  # an admin may revoke its own key: from then on it is refused
    assert httpx.get(f"{url}/v1/keys", headers=bearer(boss)).status_code == 401


def test_a_limit_given_here_applies_at_once(url: str) -> None:
    """No key had limits when the gateway started; one created with rpm 1 is limited."""
    key = create(url, owner="gina", rpm=1)["key"]
    chat = {"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    first = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=bearer(key))
    assert first.status_code == 200, first.text
    second = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=bearer(key))
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/0123456789ab")],
)
def test_only_admin_keys_may_use_the_key_routes(url: str, method: str, path: str) -> None:
    body = {"owner": None}
    refused = httpx.request(method, f"{url}{path}", json=body, headers=USER)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert httpx.request(method, f"{url}{path}", json=body).status_code == 401
    assert httpx.request(method, f"{url}{path}", json=body, headers=ADMIN).status_code != 403


BAD_BODIES: list[tuple[Any, str | None, str]] = [
    ("not json", None, "not valid JSON"),
    ([], None, "must be a JSON object"),
    ({}, "owner", "'owner' is a required property"),
    ({"owner": ""}, "owner", "Invalid 'owner'"),
    ({"owner": "   "}, "owner", "Invalid 'owner'"),
    ({"owner": 5}, "owner", "Invalid 'owner'"),
    ({"owner": "a", "rpm": 0}, "rpm", "Invalid 'rpm'"),
    ({"owner": "a", "rpm": "10"}, "rpm", "Invalid 'rpm'"),
    ({"owner": "a", "rpm": True}, "rpm", "Invalid 'rpm'"),
    ({"owner": "a", "tpm": 1.5}, "tpm", "Invalid 'tpm'"),
    ({"owner": "a", "admin": "yes"}, "admin", "Invalid 'admin'"),
    ({"owner": "a", "rag": 1}, "rag", "Invalid 'rag'"),
    ({"owner": "a", "name": "x" * 257}, "name", "Invalid 'name'"),
    ({"owner": "a", "key": "gk-my-own"}, "key", "Invalid 'key'"),
    ({"owner": "a", "hash": "sha256:" + "0" * 64}, "hash", "Invalid 'hash'"),
]


@pytest.mark.parametrize(("body", "param", "message"), BAD_BODIES)
def test_bad_bodies_are_400s_and_change_nothing(
    url: str, tmp_path: Path, body: Any, param: str | None, message: str
) -> None:
    create(url, owner="before")
    path = tmp_path / "keys.yaml"
    before = path.read_text(encoding="utf-8")
    content = body if isinstance(body, str) else json.dumps(body)
    resp = httpx.post(f"{url}/v1/keys", content=content, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert message in error["message"]
    assert path.read_text(encoding="utf-8") == before
    assert len(listed(url)) == 3


def test_concurrent_creations_all_land_in_a_valid_file(url: str, tmp_path: Path) -> None:
    async def make(http: httpx.AsyncClient, n: int) -> str:
        resp = await http.post(f"{url}/v1/keys", json={"owner": f"u{n}"}, headers=ADMIN)
        assert resp.status_code == 201, resp.text
        key: str = resp.json()["key"]
        return key

    async def make_all() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as http:
            return await asyncio.gather(*(make(http, n) for n in range(24)))

    made = asyncio.run(make_all())
    on_file = read_key_file(tmp_path / "keys.yaml")
    assert sorted(e.key_id for e in on_file) == sorted(key_id(k) for k in made)
    assert all(models(url, key) == 200 for key in made)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".keys")] == []


def test_a_keys_file_broken_by_hand_is_a_clear_500_and_is_left_alone(
    url: str, tmp_path: Path
) -> None:
    key = create(url, owner="hank")["key"]
    path = tmp_path / "keys.yaml"
    path.write_text("- hash: [\n", encoding="utf-8")
    resp = httpx.post(f"{url}/v1/keys", json={"owner": "ivy"}, headers=ADMIN)
    assert resp.status_code == 500
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"].startswith(f"the keys file cannot be changed: keys file {path}")
    assert "is not valid YAML" in error["message"]
    assert path.read_text(encoding="utf-8") == "- hash: [\n"
    assert models(url, key) == 200  # the keys in use are unchanged


def test_an_open_gateway_is_closed_by_its_first_key(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    """Without any key every route is open, the key routes too; the first key created (an
    admin's, here) is then required, as it would be after a restart."""
    url = make_gateway(data_dir=tmp_path)
    assert httpx.get(f"{url}/v1/models").status_code == 200
    assert listed_without_key(url) == []
    made = httpx.post(f"{url}/v1/keys", json={"owner": "root", "admin": True})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/v1/keys").status_code == 401
    assert models(url, key) == 200
    assert httpx.get(f"{url}/v1/keys", headers=bearer(key)).status_code == 200
    assert read_key_file(tmp_path / "keys.yaml")[0].admin is True
    restarted = make_gateway(api_keys_file=tmp_path / "keys.yaml")
    assert httpx.get(f"{restarted}/v1/models").status_code == 401
    assert models(restarted, key) == 200


def listed_without_key(url: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/v1/keys")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def test_the_key_routes_are_documented(url: str) -> None:
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    create_key = paths["/v1/keys"]["post"]
    assert {"400", "401", "403"} <= set(create_key["responses"])
    schema = create_key["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["owner"]
    assert set(schema["properties"]) == {"owner", "name", "rpm", "tpm", "rag", "admin"}
    assert {"400", "403", "404"} <= set(paths["/v1/keys/{key_id}"]["delete"]["responses"])
