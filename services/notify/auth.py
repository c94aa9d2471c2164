"""Who an API request is: the grant of its bearer token, refused (401) when the token is
unknown or names a person who is no longer the agency's (disabled or gone from the registry)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from services.common.bearer import bearer_token
from services.common.tokens import ApiTokens, Grant
from services.notify.addresses import Directory

# The answer for an escalation a caller may not see, exactly as for one that does not exist.
NOT_OPEN = "no open escalation with this id"


def bearer_grant(tokens: ApiTokens, people: Directory, authorization: str | None) -> Grant:
    """The grant of an `Authorization: Bearer` header; the 401 HTTPException otherwise."""
    grant = tokens.lookup(bearer_token(authorization))
    if grant is not None and grant.person_id is not None:
        person = people.get(grant.agency_id, grant.person_id)
        if person is None or person.disabled:
            grant = None
    if grant is None:
        raise HTTPException(
            401, "missing or unknown API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return grant


def role_grant(
    tokens: ApiTokens, people: Directory, roles: frozenset[str], what: str
) -> Callable[[Request], Grant]:
    """The dependency giving the request's grant: 401 (WWW-Authenticate) for a missing or
    unknown token or one whose person is no longer the agency's, 403 ("this token's role may
    not <what>") for a role not in `roles`."""

    def grant(request: Request) -> Grant:
        found = bearer_grant(tokens, people, request.headers.get("authorization"))
        if found.role not in roles:
            raise HTTPException(403, f"this token's role may not {what}")
        return found

    return grant
