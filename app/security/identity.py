"""Who a request comes from: the API key it used (if keys are configured) and the user it acts
as. The authentication middleware puts an `Identity` in `request.state.identity`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    key_id: str | None
    """A stable, non-secret id of the key (a hash prefix); None when the gateway has no keys."""
    owner: str | None
    """The user a key is bound to; None for a service key, which acts for the user the request
    names."""
    rpm: int | None = None
    """Requests per minute this key may make; None: unlimited."""
    tpm: int | None = None
    """Tokens per minute this key may use; None: unlimited."""
    rag: bool = True
    """Whether this key's chats are grounded in documents and memories."""
    admin: bool = False
    """Whether this key may use the admin routes (debug, cache invalidation, keys)."""


ANONYMOUS = Identity(key_id=None, owner=None)
"""A request on a route open to anyone (health, the docs) of a gateway with keys."""
OPEN = Identity(key_id=None, owner=None, admin=True)
"""Any request to a gateway without keys: it may do anything, the admin routes included."""


USER_HEADER = "x-openwebui-user-id"
"""OpenWebUI's header naming its user (with ENABLE_FORWARD_USER_INFO_HEADERS)."""


def acting_user(
    identity: Identity, named: str | None, header: str | None, trust_header: bool
) -> str | None:
    """The user a request acts for: a key's owner, whatever the request says; else the user it
    names (`named`, from the body or query), or OpenWebUI's header when TRUST_USER_HEADERS is
    on; None when it names none."""
    if identity.owner:
        return identity.owner
    return named or (header if trust_header else None) or None


def knowledge_owner(identity: Identity, user: str | None) -> str:
    """Whose documents and memories a request uses: its user's, else its key's, else the
    anonymous user's (a gateway without keys)."""
    if user:
        return user
    return f"key:{identity.key_id}" if identity.key_id else "anonymous"
