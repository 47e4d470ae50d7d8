"""Every error the gateway raises on purpose, mapped once to OpenAI's error body (and, on the
Anthropic Messages API's paths, to Anthropic's: `body_at`).

    GatewayError                    500 server_error
    ├── InvalidRequest              400 invalid_request_error (param names the field)
    │   ├── UpstreamRejected        400 with the upstream's own type, code and param
    │   └── NoCompletions           400, the upstream has no raw completions: ask it to chat
    ├── RequestTooLarge             413 request_too_large, a body over MAX_REQUEST_BYTES
    ├── AuthenticationFailed        401 invalid_api_key
    ├── Forbidden                   403 permission_denied (an admin route, a path outside
    │                               INDEX_ALLOWED_ROOTS)
    ├── NotFound                    404 not_found
    │   └── ModelNotFound           404 model_not_found
    ├── RateLimited                 429 rate_limit_exceeded
    │   └── UpstreamRateLimited     429, raised by a provider; retryable
    ├── UpstreamError               502 upstream_error, a provider failed; retryable
    │   ├── ProviderUnavailable     503 provider_unavailable (refused, unreachable, circuit open)
    │   │   ├── ProviderUnreachable 503, nothing answers at the provider's address
    │   │   └── Shed                503 task_shed, a background task gave way to a user; final
    │   └── UpstreamTimeout         504 upstream_timeout
    │       └── AnswerTooLong       504, past TOTAL_TIMEOUT: final, no retry or fallback
    ├── ToolError                   502 tool_error, a tool's own service failed or is unreachable
    │   └── ToolTimeout             504 tool_timeout, a tool ran past TOOL_TIMEOUT
    ├── StepFailed                  502 pipeline_step_failed, a pipeline's function step raised
    ├── StateUnavailable            503 state_unavailable, Redis (sessions, history) unreachable
    ├── KnowledgeUnavailable        503 knowledge_unavailable, no embedder or Chroma unreachable
    │   └── IndexMismatch           503 index_mismatch, vectors of another embedding model
    ├── BrokerUnavailable           503 broker_unavailable, BROKER_URL's broker refused a task
    ├── TaskTimeout                 504 task_timeout, no worker answered a task by its deadline
    └── TaskFailed                  500 task_failed, a task's handler raised (not a GatewayError)
        └── TaskDeadLettered        500 task_dead_lettered, a task given up after its attempts

A tool refuses bad input with `InvalidRequest` (naming the argument in `param`).

Anthropic's body names a type by the status alone: 400 invalid_request_error, 401
authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500 and 502 api_error, 503 and 529 overloaded_error, 504 timeout_error.

Any of them may carry `retry_after` seconds, sent as a `Retry-After` header. `retryable` tells
the router whether a fallback may help. Errors raised after the first streamed byte are sent
in-band instead of as a status.
"""

from __future__ import annotations

from typing import Any, ClassVar

ANTHROPIC_PATH = "/v1/messages"
"""The Anthropic Messages API: this path and those under it answer errors in Anthropic's shape."""
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def speaks_anthropic(path: str) -> bool:
    """Whether a request to `path` is one of the Anthropic Messages API's."""
    return path == ANTHROPIC_PATH or path.startswith(ANTHROPIC_PATH + "/")


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, param: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        default = "api_error" if self.status >= 500 else "invalid_request_error"
        kind = _ANTHROPIC_TYPES.get(self.status, default)
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def body_at(self, path: str) -> dict[str, Any]:
        """The body of this error for a request to `path`: Anthropic's on its Messages API,
        OpenAI's everywhere else."""
        return self.anthropic_body() if speaks_anthropic(path) else self.body()

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AmbiguousModel(InvalidRequest):
    code = "model_ambiguous"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model")


class UpstreamRejected(InvalidRequest):
    """An upstream's refusal of the request, its OpenAI `type`, `code` and `param` (such as
    `context_length_exceeded` on `messages`) passed on to the client as the upstream gave them."""

    def __init__(
        self, message: str, *, error_type: str, code: str | int | None, param: str | None
    ) -> None:
        super().__init__(message, param=param)
        self.error_type = error_type
        self.error_code = code

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["type"] = self.error_type
        body["error"]["code"] = self.error_code
        return body


class NoCompletions(InvalidRequest):
    """A provider (or one of its models) without raw prompt completions (`/completions`): the
    engine asks it through a chat instead."""

    code = "completions_unsupported"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model")


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamRateLimited(RateLimited):
    retryable = True

    def __init__(self, provider: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{provider}: {message}", retry_after=retry_after)
        self.provider = provider


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"
    retryable = True

    def __init__(self, provider: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{provider}: {message}", retry_after=retry_after)
        self.provider = provider


class ProviderUnavailable(UpstreamError):
    status = 503
    code = "provider_unavailable"


class ProviderUnreachable(ProviderUnavailable):
    """No connection to the provider at all (refused, no route, unknown host): a failure of the
    provider itself, whatever model was asked for."""


class Shed(ProviderUnavailable):
    """A background task stopped for a user's turn on a model that serves one at a time; not a
    failure of the provider, and not worth a retry."""

    code = "task_shed"
    retryable = False


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class AnswerTooLong(UpstreamTimeout):
    """An answer still coming after TOTAL_TIMEOUT (`limit` seconds): asking again would take as
    long."""

    retryable = False

    def __init__(self, provider: str, limit: float) -> None:
        super().__init__(provider, f"the answer exceeded TOTAL_TIMEOUT ({limit:g}s)")


class ToolError(GatewayError):
    status = 502
    code = "tool_error"


class ToolTimeout(ToolError):
    status = 504
    code = "tool_timeout"


class StepFailed(GatewayError):
    status = 502
    code = "pipeline_step_failed"


class StateUnavailable(GatewayError):
    status = 503
    code = "state_unavailable"


class KnowledgeUnavailable(GatewayError):
    status = 503
    code = "knowledge_unavailable"


class IndexMismatch(KnowledgeUnavailable):
    code = "index_mismatch"


class BrokerUnavailable(GatewayError):
    status = 503
    code = "broker_unavailable"


class TaskTimeout(GatewayError):
    status = 504
    code = "task_timeout"


class TaskFailed(GatewayError):
    code = "task_failed"


class TaskDeadLettered(TaskFailed):
    code = "task_dead_lettered"
