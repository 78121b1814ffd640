"""Security headers (``gateway.http.front`` adds them) and trusted hosts, set from the settings."""

from __future__ import annotations

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Scope

# JSON answers load nothing and may be framed by nobody.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# GraphiQL (/graphql) and Swagger UI (/docs) are served whole by the gateway
# (gateway/graphiql.py, gateway/docs.py): their pages load nothing from elsewhere. Inline
# styles stay (React sets style attributes); fonts and images may be data: URLs.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
DOCS_CSP = PAGE_CSP
PAGE_PATHS = frozenset({"/graphql", "/docs"})
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Answers that never reach the response cache (refused hosts, preflights) say so too.
    "X-Cache": "BYPASS",
}


class TrustedHosts:
    """``TRUSTED_HOSTS``, as the front door checks it: Starlette's ``TrustedHostMiddleware``
    around ``app``, except for the probes (orchestrators send them by IP) and a ``Host``
    that is one of the names as given, which go straight to ``app``; anything else (a
    wildcard name, a refusal) is Starlette's to decide and answer."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts)
        self.exact = frozenset(h.lower().encode("latin-1") for h in allowed_hosts if "*" not in h)

    def app_for(self, scope: Scope) -> ASGIApp:
        if scope["path"].startswith("/health/"):
            return self.app
        for name, value in scope["headers"]:
            if name == b"host":
                return self.app if value.split(b":")[0] in self.exact else self.checked
        return self.checked
