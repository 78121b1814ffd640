"""Accounts, users, API keys and orders: queries and mutations over the services."""

from __future__ import annotations

from datetime import datetime

import strawberry

from data import models
from data.actor import user_actor
from data.money import as_utc
from data.pagination import PageRequest
from data.services import api_keys, auth, orders, users
from data.tokens import TokenPair
from resolvers.connections import Connection, to_connection
from resolvers.context import Info
from resolvers.ids import database_id_of, to_global_id
from resolvers.types import Node, Order, User


@strawberry.type
class AuthTokens:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int

    @classmethod
    def of(cls, pair: TokenPair) -> AuthTokens:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
        )


@strawberry.type
class ApiKey(Node):
    name: str
    scopes: list[str]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: models.ApiKey) -> ApiKey:
        return cls(
            id=strawberry.ID(to_global_id("ApiKey", row.id)),
            database_id=row.id,
            name=row.name,
            scopes=list(row.scopes),
            prefix=row.prefix,
            created_at=as_utc(row.created_at),
            last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
            revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        )


@strawberry.type
class CreatedApiKey:
    api_key: ApiKey
    key: str = strawberry.field(description="The whole key: shown this once, never again.")


@strawberry.input
class RegisterInput:
    email: str
    password: str
    name: str


@strawberry.input
class UpdateViewerInput:
    name: str | None = None
    email: str | None = None
    password: str | None = None
    current_password: str | None = None


@strawberry.input
class UpdateUserInput:
    role: str | None = None
    is_active: bool | None = None
    name: str | None = None


@strawberry.input
class CreateApiKeyInput:
    name: str
    scopes: list[str]


@strawberry.input
class OrderFilter:
    status: str | None = None


@strawberry.type
class AccountQuery:
    @strawberry.field(description="The signed-in user.")
    async def viewer(self, info: Info) -> User:
        async with info.context.db.read() as session:
            return User.of(await users.find_viewer(session, info.context.actor))

    @strawberry.field(description="A user: yourself, or anyone for staff and admins.")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        async with info.context.db.read() as session:
            row = await users.find_user(
                session, info.context.actor, user_id=database_id_of("User", id)
            )
        return User.of(row)

    @strawberry.field(description="All users, newest first (staff and admins).")
    async def users(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[User]:
        context = info.context
        async with context.db.read() as session:
            page = await users.list_users(
                session, context.actor, page=PageRequest(first, after, last, before)
            )

        return to_connection(page, User.of, context.counter(users.count_users))

    @strawberry.field(description="API keys, newest first (admins).")
    async def api_keys(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ApiKey]:
        context = info.context
        async with context.db.read() as session:
            page = await api_keys.list_api_keys(
                session, context.actor, page=PageRequest(first, after)
            )

        return to_connection(page, ApiKey.of, context.counter(api_keys.count_api_keys))

    @strawberry.field(description="One order you may see.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        async with info.context.db.read() as session:
            row = await orders.find_order(
                session, info.context.actor, order_id=database_id_of("Order", id)
            )
        return Order.of(row)

    @strawberry.field(description="Orders you may see, newest first.")
    async def orders(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: OrderFilter | None = None,
    ) -> Connection[Order]:
        context = info.context
        status = filter.status if filter else None
        async with context.db.read() as session:
            page = await orders.list_orders(
                session, context.actor, status=status, page=PageRequest(first, after, last, before)
            )

        return to_connection(page, Order.of, context.counter(orders.count_orders, status=status))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Sign up as a customer.")
    async def register(self, info: Info, input: RegisterInput) -> User:
        async with info.context.db.write() as session:
            row = await auth.register(
                session,
                info.context.actor,
                email=input.email,
                password=input.password,
                name=input.name,
            )
        return User.of(row, seen_as=user_actor(row.id, row.role))

    @strawberry.mutation(description="Log in with email and password.")
    async def login(self, info: Info, email: str, password: str) -> AuthTokens:
        async with info.context.db.write() as session:
            pair = await auth.login(
                session,
                email=email,
                password=password,
                tokens=info.context.tokens,
                attempts=info.context.login_attempts,
            )
        return AuthTokens.of(pair)

    @strawberry.mutation(description="Trade a refresh token (once) for a new pair.")
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthTokens:
        async with info.context.db.write() as session:
            pair = await auth.refresh(
                session, refresh_token=refresh_token, tokens=info.context.tokens
            )
        return AuthTokens.of(pair)

    @strawberry.mutation(description="End the login the refresh token belongs to.")
    async def logout(self, info: Info, refresh_token: str) -> bool:
        async with info.context.db.write() as session:
            await auth.logout(session, refresh_token=refresh_token, tokens=info.context.tokens)
        return True

    @strawberry.mutation(description="Edit your own name, email or password.")
    async def update_viewer(self, info: Info, input: UpdateViewerInput) -> User:
        async with info.context.db.write() as session:
            row = await users.update_viewer(  # None leaves a field as it is
                session,
                info.context.actor,
                name=input.name,
                email=input.email,
                password=input.password,
                current_password=input.current_password,
            )
        return User.of(row)

    @strawberry.mutation(description="Change a user's role, active flag or name (admins).")
    async def update_user(self, info: Info, id: strawberry.ID, input: UpdateUserInput) -> User:
        async with info.context.db.write() as session:
            row = await users.update_user(
                session,
                info.context.actor,
                user_id=database_id_of("User", id),
                role=input.role,
                is_active=input.is_active,
                name=input.name,
            )
        return User.of(row)

    @strawberry.mutation(description="Create an API key (admins); the key is shown once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreatedApiKey:
        async with info.context.db.write() as session:
            row, key = await api_keys.create_api_key(
                session, info.context.actor, name=input.name, scopes=input.scopes
            )
        return CreatedApiKey(api_key=ApiKey.of(row), key=key)

    @strawberry.mutation(description="Revoke an API key (admins).")
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKey:
        async with info.context.db.write() as session:
            row = await api_keys.revoke_api_key(
                session, info.context.actor, key_id=database_id_of("ApiKey", id)
            )
        return ApiKey.of(row)
