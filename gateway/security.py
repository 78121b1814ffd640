"""Security headers, trusted hosts and CORS: pure ASGI, set from the settings."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON answers load nothing and may be framed by nobody.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# GraphiQL (/graphql) is served whole by the gateway (gateway/graphiql.py): its page loads
# nothing from elsewhere. Inline styles stay (React sets style attributes), fonts are data:.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# Swagger UI (/docs, off in production unless enabled) is FastAPI's page, which loads its
# code from a CDN.
_CDNS = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {_CDNS}; "
    f"style-src 'self' 'unsafe-inline' {_CDNS}; font-src 'self' data: {_CDNS}; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
PAGE_PATHS = frozenset({"/graphql", "/docs", "/docs/oauth2-redirect"})
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Answers that never reach the response cache (refused hosts, preflights) say so too.
    "X-Cache": "BYPASS",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] in PAGE_PATHS
        page_csp = PAGE_CSP if scope["path"] == "/graphql" else DOCS_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy",
                                   page_csp if page and html else STRICT_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TrustedHosts:
    """``TrustedHostMiddleware`` except for the probes, which orchestrators send by IP."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/health/"):
            await self.app(scope, receive, send)
        else:
            await self.checked(scope, receive, send)
