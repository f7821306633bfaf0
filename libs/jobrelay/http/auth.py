"""Authentication of every API request, the same way in every service that has an API.

`Authenticator.principal(headers)` answers who is calling, or raises a 401 problem (with
`WWW-Authenticate: Bearer`) for a missing, malformed, unknown or revoked key; `require` raises
a 403 for a key without the scope. Behind a gateway (`JOBRELAY_AUTH=gateway`) the gateway has
authenticated the caller and names the tenant in a header, which is believed as sent, with
every scope but `admin`. Keys never reach a log line: only their id does.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobrelay.config.settings import AuthSettings
from jobrelay.http.problems import TYPE_BASE, Problem
from jobrelay.security.keys import KeyRing, Principal, Scope

__all__ = ["ANONYMOUS_TENANT", "Authenticator", "require"]

ANONYMOUS_TENANT = "anonymous"
_GATEWAY_SCOPES = frozenset({Scope.SUBMIT, Scope.READ, Scope.CANCEL})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jobrelay"'}


class Authenticator:
    """Turns a request's headers into a Principal (keys mode) or trusts the gateway's header."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.ring = KeyRing(settings.keys_file, settings.reload_s)
        self._tenant_header = settings.tenant_header.lower()

    @property
    def gateway(self) -> bool:
        """Whether a gateway in front authenticates callers."""
        return self.settings.mode == "gateway"

    def principal(self, headers: Mapping[str, str]) -> Principal:
        """Who calls (`headers` by lower-case name); raises a 401 Problem when nobody we know does."""
        if self.gateway:
            tenant = (headers.get(self._tenant_header) or "").strip() or ANONYMOUS_TENANT
            return Principal(tenant, None, _GATEWAY_SCOPES)
        scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
        if not token or scheme.lower() != "bearer":
            raise _unauthorized("an API key is required: `Authorization: Bearer <key>`")
        found = self.ring.current().check(token.strip())
        if found is None:
            raise _unauthorized("the API key is unknown or revoked")
        return found


def require(principal: Principal, scope: Scope) -> Principal:
    """`principal` if it holds `scope`, else a 403 Problem naming the scope."""
    if not principal.may(scope):
        raise Problem(
            403,
            "Forbidden",
            f"this API key lacks the `{scope.value}` scope",
            type_=f"{TYPE_BASE}forbidden",
            scope=scope.value,
        )
    return principal


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, type_=f"{TYPE_BASE}unauthorized", headers=_CHALLENGE)
