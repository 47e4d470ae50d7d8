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


ANONYMOUS = Identity(key_id=None, owner=None)
