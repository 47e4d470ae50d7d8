"""The API keys over HTTP (admin keys only), as LiteLLM manages its keys: list, create (the key
is shown once) and revoke. The keys file's keys are managed: a change is written to the file
atomically and takes effect at once. The keys of API_KEYS and ADMIN_API_KEYS are listed
(`"source": "env"`) but cannot be changed here. Neither a key nor its hash is ever answered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from app.api.deps import AccessDep, AdminDep, require_admin
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json, validate
from app.config import ConfigError
from app.errors import GatewayError, InvalidRequest, NotFound
from app.security.identity import Identity
from app.security.keys import KEY_ID_LENGTH, KeyEntry, created_now, digest, new_key

log = logging.getLogger(__name__)

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])

KeyId = Annotated[
    str,
    Path(pattern=f"^[0-9a-f]{{{KEY_ID_LENGTH}}}$", description="The key's id, from GET /v1/keys"),
]
_T = TypeVar("_T")
_A = TypeVar("_A")


class KeyBody(BaseModel):
    """A new key: whom it acts as, its limits and its role."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    owner: str | None = Field(
        min_length=1,
        max_length=256,
        description="The user the key acts as; null: a service key, which acts for the user "
        "each request names",
    )
    name: str | None = Field(None, min_length=1, max_length=256, description="A label")
    rpm: int | None = Field(None, ge=1, description="Requests per minute; null: unlimited")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute; null: unlimited")
    rag: bool = Field(True, description="Whether the key's chats are grounded in documents")
    admin: bool = Field(False, description="Whether the key may use the admin routes")


@router.get("/v1/keys", responses=errors(403))
async def list_keys(access: AccessDep) -> Response:
    """Every key the gateway accepts: the keys file's, then API_KEYS' and ADMIN_API_KEYS'."""
    store = access.keys
    data = [_described(entry.identity, entry) for entry in store.entries]
    data.extend(_described(identity) for identity in store.fixed)
    return JSON({"object": "list", "data": data})


@router.post(
    "/v1/keys",
    status_code=201,
    responses=errors(400, 403),
    openapi_extra=request_body(KeyBody),
)
async def create_key(request: Request, access: AccessDep, admin: AdminDep) -> Response:
    """Create a key in the keys file, accepted at once; the answer's `key` is shown only once."""
    body = validate(KeyBody, parse_json(await request.body()))
    key = new_key()
    entry = KeyEntry(
        digest=digest(key),
        owner=body.owner,
        rpm=body.rpm,
        tpm=body.tpm,
        name=body.name,
        created=created_now(),
        rag=body.rag,
        admin=body.admin,
    )
    await _change(access.keys.create, entry)
    log.info(
        "%s %s created by %s",
        "admin key" if entry.admin else "key",
        entry.key_id,
        _who(admin),
    )
    return JSON({**_described(entry.identity, entry), "key": key}, status_code=201)


@router.delete("/v1/keys/{key_id}", responses=errors(400, 403, 404))
async def revoke_key(key_id: KeyId, access: AccessDep, admin: AdminDep) -> Response:
    """Revoke a key of the keys file: from now on it is refused."""
    store = access.keys
    if any(identity.key_id == key_id for identity in store.fixed):
        raise InvalidRequest(
            f"key '{key_id}' is set in API_KEYS or ADMIN_API_KEYS: remove it there and restart "
            "the gateway",
            param="key_id",
        )
    if await _change(store.revoke, key_id) is None:
        raise NotFound(f"no key '{key_id}' in the keys file", param="key_id")
    log.info("key %s revoked by %s", key_id, _who(admin))
    return JSON({"id": key_id, "object": "key.deleted", "deleted": True})


def _described(identity: Identity, entry: KeyEntry | None = None) -> dict[str, Any]:
    """A key of the keys file (its `entry`), or of the environment (its identity alone)."""
    return {
        "object": "key",
        "key_id": identity.key_id,
        "owner": identity.owner,
        "name": entry.name if entry else None,
        "rpm": identity.rpm,
        "tpm": identity.tpm,
        "rag": identity.rag,
        "admin": identity.admin,
        "created": entry.created if entry else None,
        "source": "file" if entry else "env",
    }


def _who(admin: Identity) -> str:
    return f"admin key {admin.key_id}" if admin.key_id else "a request to a gateway without keys"


async def _change(change: Callable[[_A], _T], argument: _A) -> _T:
    """`change` the keys file (in a thread: it waits on the file's lock and disk); a file that
    cannot be read or written is a 500 that says why, and changes nothing."""
    try:
        return await asyncio.to_thread(change, argument)
    except ConfigError as exc:
        raise GatewayError(f"the keys file cannot be changed: {exc}") from None
    except OSError as exc:
        raise GatewayError(f"the keys file cannot be written: {exc}") from None
