"""`bdc-server`: run the lead API and administer it from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import sys
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.db import StoreRow, UserRow, make_engine, make_sessionmaker, transaction
from server.settings import Settings, default_db_url


@contextmanager
def _sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on `db_url`; the engine (and its pooled connections) is closed afterwards."""
    engine = make_engine(db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.migrate import upgrade

    upgrade(args.db)
    print(f"database at {_redact(args.db)} is at the newest schema")
    return 0


def cmd_create_store(args: argparse.Namespace) -> int:
    with _sessions(args.db) as sessions, transaction(sessions) as session:
        if session.get(StoreRow, args.id) is not None:
            print(f"error: store '{args.id}' already exists", file=sys.stderr)
            return 1
        session.add(
            StoreRow(
                id=args.id,
                group_id=args.group,
                name=args.name,
                time_zone=args.time_zone,
                state=args.state.upper(),
                postal_code=args.zip,
                market_zips=args.market_zips,
            )
        )
    print(f"created store '{args.id}' ({args.name})")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    from server.auth import hash_password

    with _sessions(args.db) as sessions, transaction(sessions) as session:
        if session.get(StoreRow, args.store) is None:
            print(
                f"error: store '{args.store}' does not exist; create it with "
                "'bdc-server create-store' (or run 'bdc-server seed-demo')",
                file=sys.stderr,
            )
            return 1
        if session.scalar(select(UserRow).where(UserRow.username == args.username)):
            print(f"error: user '{args.username}' already exists", file=sys.stderr)
            return 1
        session.add(
            UserRow(
                id=str(uuid.uuid4()),
                username=args.username,
                display_name=args.display_name or args.username,
                password_hash=hash_password(args.password),
                role=args.role,
                store_id=args.store,
            )
        )
    print(f"created {args.role} '{args.username}' in store '{args.store}'")
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    from server.auth import create_api_key

    with _sessions(args.db) as sessions, transaction(sessions) as session:
        if session.get(StoreRow, args.store) is None:
            print(f"error: store '{args.store}' does not exist", file=sys.stderr)
            return 1
        key = create_api_key(session, args.name, args.store)
    # The key is printed once, here, and stored only as a hash.
    print(key)
    return 0


ENV_PREFIX = "BDC_"


def settings_from_env(db_url: str, environ: Mapping[str, str]) -> Settings:
    """Settings with each field overridable by an environment variable BDC_<FIELD> (e.g.
    BDC_EMAIL_GATEWAY=smtp, BDC_SMTP_HOST, BDC_TWILIO_AUTH_TOKEN, BDC_WEBHOOK_TOKEN); durations
    in seconds, booleans as true/false. Secrets stay out of the command line (and `ps`).
    Raises ValueError naming the variable."""
    values: dict[str, Any] = {}
    defaults = Settings(db_url=db_url)
    hints = typing.get_type_hints(Settings)
    for item in dataclasses.fields(Settings):
        name = ENV_PREFIX + item.name.upper()
        if item.name == "db_url" or name not in environ:
            continue
        raw = environ[name].strip()
        kind = hints[item.name]
        try:
            values[item.name] = _parse_setting(raw, kind, getattr(defaults, item.name))
        except ValueError as exc:
            raise ValueError(f"{name}={raw!r}: {exc}") from None
    return dataclasses.replace(defaults, **values)


def _parse_setting(raw: str, kind: Any, default: Any) -> Any:
    optional = type(None) in typing.get_args(kind)
    if optional and raw.lower() in ("", "none", "off"):
        return None
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
    if base is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if base is int:
        return int(raw)
    if base is float:
        return float(raw)
    if base is timedelta:
        seconds = float(raw)
        if seconds < 0:
            raise ValueError("expected a number of seconds >= 0")
        return timedelta(seconds=seconds)
    if base is str:
        return raw
    raise ValueError(f"cannot be set from the environment (a {type(default).__name__})")


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.hub import serve
    from server.migrate import upgrade

    try:
        settings = settings_from_env(args.db, os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.no_scheduler:
        settings = dataclasses.replace(settings, run_scheduler=False)
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and args.db.startswith("sqlite"):
        print(
            "error: --workers needs PostgreSQL: SQLite has one writer at a time, so several "
            "processes would only queue for it (run one process, or use PostgreSQL)",
            file=sys.stderr,
        )
        return 2
    if not args.no_migrate:
        upgrade(args.db)  # safe with several processes starting at once (see migrations/env.py)
    where = (
        f"lead API on http://{args.host}:{args.port} (database: {_redact(args.db)}; "
        "OpenAPI at /openapi.json, docs at /docs"
    )
    options = {
        "log_level": args.log_level,
        "proxy_headers": True,
        "forwarded_allow_ips": args.forwarded_allow_ips,
    }
    if args.workers > 1:
        from server.workers import WorkerSpec, serve_workers

        print(f"{where}; {args.workers} worker processes)", flush=True)
        spec = WorkerSpec(args.db, settings.run_scheduler, options)
        return serve_workers(spec, args.host, args.port, args.workers)
    api = create_app(settings)
    print(f"{where})", flush=True)
    # hub.serve ends open SSE streams on Ctrl+C / SIGTERM, so shutdown is prompt.
    serve(api, args.host, args.port, **options)
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from server.demo_seed import SeedError, seed_demo
    from server.migrate import upgrade

    upgrade(args.db)
    # The replay sends hundreds of demo messages through the log gateway: keep the output short.
    logging.getLogger("bdc.messaging").setLevel(logging.WARNING)
    print(f"seeding the demo into {_redact(args.db)} ...", flush=True)
    try:
        with _sessions(args.db) as sessions:
            summary = seed_demo(sessions, count=args.leads)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bdc-server", description="The BDC lead API.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--db",
            default=None,
            help="SQLAlchemy URL, e.g. sqlite:///leads.db or postgresql+psycopg://u:p@host/db "
            "(default: a SQLite file in the user data folder)",
        )
        return p

    serve = with_db(sub.add_parser("serve", help="run the lead API"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8440)
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run scheduled jobs in this process (another process runs them; running "
        "them in every process is safe too: each job runs once)",
    )
    serve.add_argument(
        "--no-migrate", action="store_true", help="do not upgrade the schema at start"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-* headers are trusted (comma-separated, or *)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes sharing the port (PostgreSQL only; default 1): intake is CPU work, "
        "one process uses one core",
    )
    serve.set_defaults(func=cmd_serve)

    with_db(sub.add_parser("migrate", help="create or upgrade the schema")).set_defaults(
        func=cmd_migrate
    )

    store = with_db(sub.add_parser("create-store", help="add a store (rooftop)"))
    store.add_argument("--id", required=True)
    store.add_argument("--name", required=True)
    store.add_argument("--time-zone", required=True, help="IANA name, e.g. America/Chicago")
    store.add_argument("--state", required=True)
    store.add_argument("--zip", required=True)
    store.add_argument("--group", default="default", help="dealer group id")
    store.add_argument("--market-zips", default="", help="comma-separated ZIPs or prefixes")
    store.set_defaults(func=cmd_create_store)

    user = with_db(sub.add_parser("create-user", help="add an agent, manager or admin"))
    user.add_argument("--username", required=True)
    user.add_argument("--password", required=True)
    user.add_argument("--role", required=True, choices=["agent", "manager", "admin"])
    user.add_argument("--store", required=True)
    user.add_argument("--display-name", default="")
    user.set_defaults(func=cmd_create_user)

    key = with_db(sub.add_parser("create-api-key", help="an API key for a lead provider"))
    key.add_argument("--name", required=True)
    key.add_argument("--store", required=True)
    key.set_defaults(func=cmd_create_api_key)

    seed = with_db(sub.add_parser("seed-demo", help="load deterministic demo data"))
    seed.add_argument("--leads", type=int, default=400)
    seed.set_defaults(func=cmd_seed_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A `serve --workers` child of the frozen bundle runs the worker here, not the CLI.
    multiprocessing.freeze_support()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.db is None:
        args.db = default_db_url()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
