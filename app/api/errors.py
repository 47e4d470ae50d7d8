"""Every error leaves as an error body with the right status, none as a traceback: OpenAI's
body, or Anthropic's on the Messages API's paths (`GatewayError.body_at`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.api.responses import JSON
from app.errors import GatewayError, InvalidRequest, NotFound, speaks_anthropic

log = logging.getLogger(__name__)


def _respond(request: Request, error: GatewayError) -> JSON:
    body = error.body_at(request.scope["path"])
    return JSON(body, status_code=error.status, headers=error.headers())


async def _gateway_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, GatewayError)
    if exc.status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return _respond(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, RequestValidationError)
    err = exc.errors()[0]
    param = ".".join(str(part) for part in err["loc"][1:]) or None
    return _respond(request, InvalidRequest(str(err["msg"]), param=param))


async def _http_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _respond(request, NotFound(f"no route {request.method} {request.url.path}"))
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
    path = request.scope["path"]
    body = InvalidRequest(message).body_at(path)
    if not speaks_anthropic(path):
        body["error"]["code"] = "method_not_allowed" if exc.status_code == 405 else None
    return JSON(body, status_code=exc.status_code, headers=exc.headers)


async def _client_gone(_: Request, exc: Exception) -> Response:
    log.info("the client went away before its request was read")
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> JSON:
    log.exception("unexpected error", exc_info=exc)
    return _respond(
        request, GatewayError("the gateway failed unexpectedly; see its log for details")
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
