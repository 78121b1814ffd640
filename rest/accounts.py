"""Auth (register, token, refresh, logout), users and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from data.actor import SCOPES, user_actor
from data.errors import FieldError, UnsupportedMediaType
from data.models import ROLES
from data.services import api_keys, auth, users
from data.services.accounts import MIN_PASSWORD_LENGTH
from data.tokens import TokenPair
from rest.bodies import EMAIL, NON_BLANK, StrictBody  # a role cannot be smuggled in at sign-up
from rest.deps import (
    ROUTE_CLASSES,
    ActorDep,
    AttemptsDep,
    PageDep,
    ReadSession,
    RepresentationDep,
    TokensDep,
    WriteSession,
)
from rest.openapi import problems
from rest.representations import Representation
from rest.responses import json_response, list_response
from rest.schemas import ApiKeyOut, CreatedApiKeyOut, ListOf, UserOut


class RegisterIn(StrictBody):
    email: str = Field(max_length=320, json_schema_extra={"pattern": EMAIL})
    password: str = Field(max_length=1024, json_schema_extra={"minLength": MIN_PASSWORD_LENGTH})
    name: str = Field(max_length=200, json_schema_extra={"pattern": NON_BLANK})


class RefreshIn(StrictBody):
    refresh_token: str = Field(max_length=4096)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class ViewerPatch(StrictBody):
    """A field left out or null is left as it is."""

    name: str | None = Field(None, max_length=200, json_schema_extra={"pattern": NON_BLANK})
    email: str | None = Field(None, max_length=320, json_schema_extra={"pattern": EMAIL})
    password: str | None = Field(
        None, max_length=1024, json_schema_extra={"minLength": MIN_PASSWORD_LENGTH}
    )
    current_password: str | None = Field(None, max_length=1024)


class UserPatch(StrictBody):
    """A field left out or null is left as it is."""

    role: str | None = Field(
        None, description="customer, staff or admin", json_schema_extra={"enum": [*ROLES, None]}
    )
    is_active: bool | None = None
    name: str | None = Field(None, max_length=200, json_schema_extra={"pattern": NON_BLANK})


class ApiKeyIn(StrictBody):
    name: str = Field(max_length=200, json_schema_extra={"pattern": NON_BLANK})
    scopes: list[str] = Field(
        description=f"Any of {list(SCOPES)}.",
        json_schema_extra={"items": {"type": "string", "enum": list(SCOPES)}},
    )


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def oauth2_form(request: Request) -> None:
    """Refuses a login that is not an OAuth2 form before its fields are looked for: a JSON
    body otherwise read as a form with neither field ("Field required" for fields sent)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise UnsupportedMediaType(
            "This endpoint takes an OAuth2 password form: send Content-Type "
            "application/x-www-form-urlencoded with username (your email) and password, "
            f"not {content_type or 'no content type'}.",
            errors=[
                FieldError(("header", "Content-Type"), "must be application/x-www-form-urlencoded")
            ],
        )


def _tokens(request: Request, pair: TokenPair) -> Response:
    body = {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
    }
    response = json_response(request, body)
    response.headers["Cache-Control"] = "no-store"
    return response


async def register(
    request: Request,
    body: RegisterIn,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Sign up as a customer."""
    user = await auth.register(
        session, actor, email=body.email, password=body.password, name=body.name
    )
    return json_response(request, rep.user(user_actor(user.id, user.role), user), status=201)


async def token(
    request: Request,
    session: WriteSession,
    tokens: TokensDep,
    attempts: AttemptsDep,
    username: Annotated[str, Form(min_length=1, max_length=320, description="Your email.")],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
) -> Response:
    """Log in with the OAuth2 password form (``username`` is the email).

    Only `application/x-www-form-urlencoded` (or `multipart/form-data`) is taken, as
    OAuth2 prescribes; a JSON body is refused with 415 saying so."""
    pair = await auth.login(
        session, email=username, password=password, tokens=tokens, attempts=attempts
    )
    return _tokens(request, pair)


async def refresh(
    request: Request, body: RefreshIn, session: WriteSession, tokens: TokensDep
) -> Response:
    """Trade a refresh token (once) for a new pair."""
    pair = await auth.refresh(session, refresh_token=body.refresh_token, tokens=tokens)
    return _tokens(request, pair)


async def logout(body: RefreshIn, session: WriteSession, tokens: TokensDep) -> Response:
    """End the login the refresh token belongs to."""
    await auth.logout(session, refresh_token=body.refresh_token, tokens=tokens)
    return Response(status_code=204)


async def get_viewer(
    request: Request, session: ReadSession, actor: ActorDep, rep: RepresentationDep
) -> Response:
    """The signed-in user."""
    return json_response(request, rep.user(actor, await users.find_viewer(session, actor)))


async def update_viewer(
    request: Request,
    body: ViewerPatch,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Edit your own name, email or password."""
    user = await users.update_viewer(session, actor, **body.model_dump(exclude_unset=True))
    return json_response(request, rep.user(actor, user))


async def list_users(
    request: Request, session: ReadSession, actor: ActorDep, rep: RepresentationDep, page: PageDep
) -> Response:
    """List users (staff and admins)."""
    result = await users.list_users(session, actor, page=page)
    return list_response(request, result, lambda u: rep.user(actor, u))


async def get_user(
    request: Request, user_id: int, session: ReadSession, actor: ActorDep, rep: RepresentationDep
) -> Response:
    """Get a user (yourself; anyone for staff and admins)."""
    user = await users.find_user(session, actor, user_id=user_id)
    return json_response(request, rep.user(actor, user))


async def update_user(
    request: Request,
    user_id: int,
    body: UserPatch,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Change a user's role, active flag or name (admins)."""
    user = await users.update_user(
        session, actor, user_id=user_id, **body.model_dump(exclude_unset=True)
    )
    return json_response(request, rep.user(actor, user))


async def create_api_key(
    request: Request, body: ApiKeyIn, session: WriteSession, actor: ActorDep, rep: RepresentationDep
) -> Response:
    """Create an API key (admins); the whole key is in this response only."""
    api_key, secret = await api_keys.create_api_key(
        session, actor, name=body.name, scopes=body.scopes
    )
    response = json_response(request, {**rep.api_key(actor, api_key), "key": secret}, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


async def list_api_keys(
    request: Request, session: ReadSession, actor: ActorDep, rep: RepresentationDep, page: PageDep
) -> Response:
    """List API keys, newest first (admins)."""
    result = await api_keys.list_api_keys(session, actor, page=page)
    return list_response(request, result, lambda k: rep.api_key(actor, k))


async def revoke_api_key(key_id: int, session: WriteSession, actor: ActorDep) -> Response:
    """Revoke an API key (admins)."""
    await api_keys.revoke_api_key(session, actor, key_id=key_id)
    return Response(status_code=204)


def accounts_router(rep: Representation) -> APIRouter:
    """Auth, user and API-key routes of one API version: the handlers above."""
    router = APIRouter(
        responses=problems(400, 403, 404, 409), route_class=ROUTE_CLASSES[rep.version]
    )
    router.add_api_route(
        "/auth/register",
        register,
        methods=["POST"],
        status_code=201,
        tags=["auth"],
        responses={201: {"model": UserOut}},
    )
    router.add_api_route(
        "/auth/token",
        token,
        methods=["POST"],
        tags=["auth"],
        dependencies=[Depends(oauth2_form)],
        responses={200: {"model": TokenOut}, **problems(415)},
    )
    router.add_api_route(
        "/auth/refresh",
        refresh,
        methods=["POST"],
        tags=["auth"],
        responses={200: {"model": TokenOut}},
    )
    router.add_api_route("/auth/logout", logout, methods=["POST"], status_code=204, tags=["auth"])
    router.add_api_route(
        "/users/me",
        get_viewer,
        methods=["GET"],
        tags=["users"],
        responses={200: {"model": UserOut}},
    )
    router.add_api_route(
        "/users/me",
        update_viewer,
        methods=["PATCH"],
        tags=["users"],
        responses={200: {"model": UserOut}},
    )
    router.add_api_route(
        "/users",
        list_users,
        methods=["GET"],
        tags=["users"],
        responses={200: {"model": ListOf[UserOut]}},
    )
    router.add_api_route(
        "/users/{user_id}",
        get_user,
        methods=["GET"],
        tags=["users"],
        responses={200: {"model": UserOut}},
    )
    router.add_api_route(
        "/users/{user_id}",
        update_user,
        methods=["PATCH"],
        tags=["users"],
        responses={200: {"model": UserOut}},
    )
    router.add_api_route(
        "/api-keys",
        create_api_key,
        methods=["POST"],
        status_code=201,
        tags=["api-keys"],
        responses={201: {"model": CreatedApiKeyOut}},
    )
    router.add_api_route(
        "/api-keys",
        list_api_keys,
        methods=["GET"],
        tags=["api-keys"],
        responses={200: {"model": ListOf[ApiKeyOut]}},
    )
    router.add_api_route(
        "/api-keys/{key_id}", revoke_api_key, methods=["DELETE"], status_code=204, tags=["api-keys"]
    )
    return router
