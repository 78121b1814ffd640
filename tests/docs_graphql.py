"""Runs one GraphQL example of the documentation against a server.

``python docs_graphql.py BASE_URL FILE [--as WHO] [--expect-error CODE]``.

Called by the shell that tests/test_docs_examples.py runs for a page, so GraphQL and shell
examples run in the page's order. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEMO_PASSWORD = "demo-password"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def token_of(base: str, who: str) -> str:
    form = urllib.parse.urlencode({"username": f"{who}@example.com", "password": DEMO_PASSWORD})
    status, body = post(
        base + "/api/v1/auth/token",
        form.encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    if status != 200:
        sys.exit(f"docs-test: could not sign in as {who}: {status} {body!r}")
    return str(json.loads(body)["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("document")
    parser.add_argument("--as", dest="who")
    parser.add_argument("--expect-error")
    args = parser.parse_args()
    with open(args.document, encoding="utf-8") as handle:
        query = handle.read()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if args.who:
        headers["Authorization"] = "Bearer " + token_of(args.base, args.who)
    status, raw = post(args.base + "/graphql", json.dumps({"query": query}).encode(), headers)
    print(raw.decode("utf-8", "replace"))
    try:
        answer: Any = json.loads(raw)
    except ValueError:
        sys.exit(f"docs-test: /graphql answered {status} with something that is not JSON")
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if args.expect_error:
        codes = [(error.get("extensions") or {}).get("code") for error in errors or []]
        if args.expect_error not in codes:
            sys.exit(f"docs-test: expected an error {args.expect_error}, got {codes or 'none'}")
    elif status != 200 or errors:
        sys.exit(f"docs-test: expected 200 without errors, got {status} with {errors}")


if __name__ == "__main__":
    main()
