"""OpenAI's Responses API over the turn engine: POST /v1/responses (streamed or not), and the
stored responses: GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.

A response is stored (unless `store: false`) under whoever asks: the key's owner, else the key,
else everyone without a key; another's response is a 404 like one that does not exist. A
request that continues one (`previous_response_id`) needs Redis, and is a 503 without it; a
plain request is answered even when its response cannot be stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from app.api.answer import streamed, whole
from app.api.deps import IdentityDep, ResponsesDep, ServicesDep, asker
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json
from app.api.wire import openai_responses, responses_request
from app.api.wire.responses_request import RESPONSE_ID, Decoded, ResponsesRequest
from app.chat.engine import Engine
from app.chat.grounding import Asker
from app.chat.turn import Turn
from app.errors import NotFound, StateUnavailable
from app.providers.router import Needs
from app.security.identity import Identity
from app.state.responses import ResponseStore, StoredResponse

log = logging.getLogger(__name__)

router = APIRouter()

ResponseId = Annotated[str, Path(pattern=RESPONSE_ID)]


def owner(identity: Identity) -> str:
    """Whose responses a request sees."""
    if identity.owner:
        return f"owner:{identity.owner}"
    if identity.key_id:
        return f"key:{identity.key_id}"
    return "anonymous"


@router.post(
    "/responses",
    responses=errors(400, 404, 502, 504),
    openapi_extra=request_body(ResponsesRequest),
)
async def create_response(
    request: Request, services: ServicesDep, identity: IdentityDep, store: ResponsesDep
) -> Response:
    """Create a model response (OpenAI's Responses API): a `response` object, or with
    `stream: true` its server-sent events ending in `response.completed`."""
    decoded = responses_request.decode(parse_json(await request.body()))
    scope = owner(identity)
    conversation = decoded.items
    if previous_id := decoded.request.previous_response_id:
        previous = await store.get(scope, previous_id)
        if previous is None:
            raise NotFound(
                f"Previous response with id '{previous_id}' not found.",
                param="previous_response_id",
            )
        conversation = [*previous.conversation, *decoded.items]
    body = decoded.chat_body(conversation)
    needs = Needs(
        tools=bool(body.get("tools")),
        choices=1,
        whole=not decoded.request.stream,
        custom_tools=decoded.custom_tools,
    )
    head = openai_responses.Head(decoded.echo, base_url=str(request.base_url).rstrip("/"))

    async def keep(response: dict[str, Any]) -> None:
        await _keep(store, scope, decoded, StoredResponse(response, conversation))

    grounded = asker(request, body)
    if decoded.request.stream:
        turn = await services.engine.chat(body, needs, asker=grounded)
        return streamed(request, turn, openai_responses.stream(turn, head, keep), grounded.owner)
    work = _whole(services.engine, body, needs, head, keep, grounded)
    return await whole(request, work, grounded.owner)


async def _whole(
    engine: Engine,
    body: dict[str, Any],
    needs: Needs,
    head: openai_responses.Head,
    keep: Callable[[dict[str, Any]], Awaitable[None]],
    grounded: Asker,
) -> tuple[Turn, dict[str, Any]]:
    turn = await engine.chat(body, needs, asker=grounded)
    response = await openai_responses.response(turn, head)
    await keep(response)
    return turn, response


async def _keep(store: ResponseStore, scope: str, decoded: Decoded, stored: StoredResponse) -> None:
    """Store the response if the request asks for it; an answer is not lost for want of Redis."""
    if not decoded.store:
        return
    try:
        await store.put(scope, stored)
    except StateUnavailable as exc:
        log.warning("response %s not stored: %s", stored.response["id"], exc.message)


async def _stored(response_id: str, identity: Identity, store: ResponseStore) -> StoredResponse:
    found = await store.get(owner(identity), response_id)
    if found is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return found


@router.get("/responses/{response_id}", responses=errors(400, 404))
async def get_response(
    response_id: ResponseId, identity: IdentityDep, store: ResponsesDep
) -> Response:
    """A stored response."""
    return JSON((await _stored(response_id, identity, store)).response)


@router.delete("/responses/{response_id}", responses=errors(400, 404))
async def delete_response(
    response_id: ResponseId, identity: IdentityDep, store: ResponsesDep
) -> Response:
    """Delete a stored response."""
    if not await store.delete(owner(identity), response_id):
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return JSON({"id": response_id, "object": "response", "deleted": True})


@router.get("/responses/{response_id}/input_items", responses=errors(400, 404))
async def list_input_items(
    response_id: ResponseId,
    identity: IdentityDep,
    store: ResponsesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    """The input items a stored response was given (its chain's earlier inputs and outputs, then
    its own input), a page at a time: `limit` items `after` the one with that id, in `order`."""
    items = (await _stored(response_id, identity, store)).input
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return JSON(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )
