"""The ``gateway`` command: serve, migrate, seed, create-user, export-schema, persist-queries."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def _settings() -> Settings:
    # Never the ValidationError itself: it would print the values, secrets included.
    return load_settings()


def _migrate(settings: Settings) -> None:
    from data.migrate import upgrade

    if settings.embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)


async def _seed(
    settings: Settings, *, scale: int, demo: bool, only_if_empty: bool, max_reviews: int = 5
) -> str:
    from data.db import Database
    from data.seed import is_empty, seed

    db = Database.from_url(settings.sqlalchemy_url)
    try:
        async with db.write() as session:
            if not await is_empty(session):
                if only_if_empty:
                    return "the database already has data; nothing seeded"
                raise SystemExit("gateway: the database already has data; seed fills an empty one")
            counts = await seed(session, scale=scale, demo=demo, max_reviews=max_reviews)
        return "seeded " + ", ".join(f"{n} {name}" for name, n in counts.items())
    finally:
        await db.dispose()


def cmd_migrate(args: argparse.Namespace) -> None:
    _migrate(_settings())
    print("migrated to the latest revision")


def cmd_seed(args: argparse.Namespace) -> None:
    settings = _settings()
    _migrate(settings)
    print(
        asyncio.run(
            _seed(
                settings,
                scale=args.scale,
                demo=args.demo,
                only_if_empty=False,
                max_reviews=args.max_reviews,
            )
        )
    )


def cmd_create_user(args: argparse.Namespace) -> None:
    from data.db import Database
    from data.services.accounts import create_user

    settings = _settings()
    _migrate(settings)

    async def run() -> int:
        db = Database.from_url(settings.sqlalchemy_url)
        try:
            async with db.write() as session:
                user = await create_user(
                    session,
                    email=args.email,
                    password=args.password,
                    name=args.name or args.email.split("@")[0],
                    role=args.role,
                )
                return user.id
        finally:
            await db.dispose()

    from data.errors import DomainError

    try:
        user_id = asyncio.run(run())
    except DomainError as exc:
        raise SystemExit(f"gateway: {exc.detail}") from None
    print(f"created {args.role} {args.email} with id {user_id}")


def cmd_export_schema(args: argparse.Namespace) -> None:
    from resolvers.schema import schema_sdl

    sdl = schema_sdl()
    output = Path(args.output)
    if args.check:
        if not output.exists() or output.read_text() != sdl:
            raise SystemExit(f"gateway: {output} differs from the code; run gateway export-schema")
        print(f"{output} is up to date")
        return
    output.write_text(sdl)
    print(f"wrote {output}")


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.embedded:
        # First start of the embedded default: a migrated database with demo data, so a
        # newcomer sees GraphiQL and REST answer at once. Done here, before any worker.
        _migrate(settings)
        print(asyncio.run(_seed(settings, scale=200, demo=True, only_if_empty=True)))
        settings.signing_secret  # noqa: B018 - create the shared secret before workers start
    elif settings.run_migrations:
        _migrate(settings)  # RUN_MIGRATIONS=1: once, here, before any worker starts
        print("migrated to the latest revision")
    workers = args.workers or settings.web_concurrency
    if workers > 1:
        # WEB_CONCURRENCY too: each worker's settings must know it has siblings (without
        # Redis, per-process caches turn themselves off then: one worker would not see
        # another's writes).
        os.environ.update(
            GATEWAY_BIND=f"{args.host}:{args.port}",
            GATEWAY_WORKERS=str(workers),
            WEB_CONCURRENCY=str(workers),
        )
        os.execvp(
            sys.executable,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:gateway.gunicorn_conf",
                "gateway.app:app_from_environment()",
            ],
        )
    from gateway.observability.logging import configure_logging, resolve_format
    from gateway.server import serve

    configure_logging(
        resolve_format(settings.log_format, production=settings.is_production), settings.log_level
    )
    serve(settings, host=args.host, port=args.port)


# Limits: the persisted query allow-list
def cmd_persist_queries(args: argparse.Namespace) -> None:
    import json

    from resolvers.core_schema import core_schema
    from resolvers.persisted import build_manifest
    from resolvers.schema import schema

    documents: dict[str, str] = {}
    for given in args.paths:
        path = Path(given)
        files = sorted(path.glob("**/*.graphql")) if path.is_dir() else [path]
        for file in files:
            documents[str(file)] = file.read_text(encoding="utf-8")
    try:
        manifest = build_manifest(documents, core_schema(schema))
    except ValueError as exc:
        raise SystemExit(f"gateway: {exc}") from None
    Path(args.output).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(manifest['operations'])} operations to {args.output}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (gunicorn when > 1); default WEB_CONCURRENCY or 1",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)

    seed = commands.add_parser("seed", help="load deterministic data into an empty database")
    seed.add_argument("--scale", type=int, default=100, help="about this many products")
    seed.add_argument(
        "--demo",
        action="store_true",
        help="demo accounts with a known password; products 1 to 3 in stock",
    )
    seed.add_argument(
        "--max-reviews",
        type=int,
        default=5,
        choices=range(0, 51),
        metavar="0..50",
        help="reviews per product, 0 to this (default 5)",
    )
    seed.set_defaults(func=cmd_seed)

    user = commands.add_parser("create-user", help="create a user of any role")
    user.add_argument("--email", required=True)
    user.add_argument("--password", required=True)
    user.add_argument("--role", choices=("customer", "staff", "admin"), default="customer")
    user.add_argument("--name")
    user.set_defaults(func=cmd_create_user)

    export = commands.add_parser("export-schema", help="write schema.graphql from the code")
    export.add_argument("--output", default="schema.graphql")
    export.add_argument("--check", action="store_true", help="fail if the file differs")
    export.set_defaults(func=cmd_export_schema)

    persist = commands.add_parser(
        "persist-queries", help="check .graphql documents and write an allow-list manifest"
    )
    persist.add_argument("paths", nargs="+", help=".graphql files or directories of them")
    persist.add_argument("--output", default="persisted-queries.json")
    persist.set_defaults(func=cmd_persist_queries)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
