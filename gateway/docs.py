"""Swagger UI at ``/docs``, served whole by the gateway: it works with the network closed.

Swagger UI's code, styles and icon come from the ``fastapi-offline`` package (its
``static`` directory: swagger-ui-dist 5, Apache-2.0, repackaged under MIT), served with
Starlette's ``StaticFiles`` from the installed package, not copied into this repository.
The page and the script that starts Swagger UI are the gateway's own
(``static/docs/``): a file, not FastAPI's inline script, so the page's
Content-Security-Policy allows scripts from 'self' only. ReDoc is not served.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs-assets"
STATIC = Path(__file__).resolve().parent / "static" / "docs"
# Swagger UI's files, as the package ships them (swagger-ui-bundle.js, swagger-ui.css,
# favicon.png); the gateway's own directory is looked in first.
VENDOR_PACKAGE = ("fastapi_offline", "static")


@cache
def docs_page(root_path: str, title: str, openapi_url: str) -> str:
    """Swagger UI's HTML for an app mounted at ``root_path``."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    return (
        page.replace("{title}", escape(title))
        .replace("{assets}", escape(root_path + ASSETS_PATH))
        .replace("{openapi}", escape(root_path + openapi_url))
    )


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """``/docs`` and its assets on ``app``, for the OpenAPI document at ``openapi_url``."""
    app.mount(
        ASSETS_PATH, StaticFiles(directory=STATIC, packages=[VENDOR_PACKAGE]), name="docs-assets"
    )

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_page(request.scope.get("root_path", ""), app.title, openapi_url))
