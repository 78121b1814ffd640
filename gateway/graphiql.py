"""The GraphiQL console, served whole by the gateway: it works with the network closed.

The page and its pinned assets (graphiql 3.8.3, react and react-dom 18.2.0, from the npm
registry; see ``static/graphiql/LICENSES.txt``) ship inside the package, so the page's
Content-Security-Policy allows scripts from 'self' only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/graphiql-assets"
STATIC = Path(__file__).resolve().parent / "static" / "graphiql"


@cache
def graphiql_page() -> str:
    """The console's HTML, pointing at the assets the gateway serves."""
    return (STATIC / "index.html").read_text(encoding="utf-8").replace("{assets}", ASSETS_PATH)


def mount_graphiql_assets(app: FastAPI) -> None:
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC), name="graphiql-assets")
