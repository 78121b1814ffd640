"""Errors that teach: a malformed body says where and why (alike in REST and GraphQL), a
JSON login names the form it needs, a 405 names every method of the path, and the
OpenAPI document documents errors as they are answered."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway
from tests.test_errors import problem

MALFORMED = b'{"slug": "board-games" "name": "Board games"}'
WHERE = "Expecting ',' delimiter at line 1, column 24"


async def test_rest_names_where_and_why_a_body_is_not_json(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/api/v1/categories", content=MALFORMED, headers={"content-type": "application/json"}
    )
    body = problem(response, 400, "BAD_USER_INPUT")
    assert body["detail"] == f"The request body is not valid JSON: {WHERE}."
    assert body["errors"] == [{"loc": ["body"], "msg": WHERE}]


async def test_graphql_words_the_same_cause_the_same_way(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/graphql", content=MALFORMED, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"] == f"The request body is not valid JSON: {WHERE}."
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_body_that_is_not_utf8_says_so_in_both(gateway: Gateway) -> None:
    raw = b'{"slug": "\xff"}'
    expected = "The request body is not valid UTF-8: invalid start byte at byte 10."
    rest = await gateway.client.post(
        "/api/v1/categories", content=raw, headers={"content-type": "application/json"}
    )
    assert problem(rest, 400, "BAD_USER_INPUT")["detail"] == expected
    graphql = await gateway.client.post(
        "/graphql", content=raw, headers={"content-type": "application/json"}
    )
    assert graphql.json()["errors"][0]["message"] == expected


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_json_login_is_told_to_send_the_oauth2_form(gateway: Gateway, version: str) -> None:
    response = await gateway.client.post(
        f"/api/{version}/auth/token",
        json={"username": "customer@example.com", "password": "demo-password"},
    )
    body = problem(response, 415, "BAD_USER_INPUT")
    assert "application/x-www-form-urlencoded" in body["detail"]
    assert "username" in body["detail"]
    assert "password" in body["detail"]
    # The same fields as a form are read: the answer is about the credentials.
    form = await gateway.client.post(
        f"/api/{version}/auth/token",
        data={"username": "nobody@example.com", "password": "not-the-password"},
    )
    assert problem(form, 401, "UNAUTHENTICATED")["detail"] == "Invalid email or password."


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/users/me", "GET, HEAD, PATCH"),
        ("/api/v2/products/1", "DELETE, GET, HEAD, PATCH"),
        ("/api/v1/categories", "GET, HEAD, POST"),
        ("/api/v2/orders/1/cancel", "POST"),
    ],
)
async def test_a_405_names_every_method_of_the_path(
    gateway: Gateway, path: str, allowed: str
) -> None:
    response = await gateway.client.put(path, json={})
    problem(response, 405, "BAD_USER_INPUT")
    assert response.headers["allow"] == allowed


async def test_every_rest_error_is_documented_as_problem_json(gateway: Gateway) -> None:
    document = (await gateway.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem_schema = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "request_id", "errors"} <= set(
        problem_schema["properties"]
    )
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
    ]
    assert len(operations) == 64
    for path, method, operation in operations:
        errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
        assert {"401", "429", "500"} <= set(errors), (path, method)
        for response in errors.values():
            assert list(response["content"]) == ["application/problem+json"], (path, method)
        if "cursor" in {p["name"] for p in operation.get("parameters", [])}:
            assert "400" in errors, (path, method)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(errors), (path, method)
    token = document["paths"]["/api/v1/auth/token"]["post"]
    assert "415" in token["responses"]
