"""The ``orderdesk`` console script: one entry point for every process and admin task.

Each subcommand loads settings once, resolves its servers (configured URLs or the
embedded default) and hands both to the composition root of the process it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from orderdesk.settings import Settings, SettingsError, load_settings


def _serve(app_factory: str, settings: Settings, host: str, port: int, process: str) -> int:
    import importlib

    import uvicorn

    from orderdesk import heap
    from orderdesk.logs import configure_logging
    from orderdesk.servers import runtime_servers

    configure_logging(process, settings.log_level, settings.log_format)
    module_name, _, func_name = app_factory.partition(":")
    with runtime_servers(settings) as resolved:
        app = getattr(importlib.import_module(module_name), func_name)(resolved)
        heap.settle()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from orderdesk import migrations
    from orderdesk.logs import configure_logging
    from orderdesk.servers import runtime_servers

    configure_logging("migrate", settings.log_level, "text")
    with runtime_servers(settings) as resolved:
        assert resolved.database_url is not None
        targets = [resolved.database_url]
        read_url = resolved.effective_read_database_url
        if read_url and read_url != resolved.database_url:
            targets.append(read_url)
        for url in targets:
            migrations.upgrade(url, args.revision)
    print(f"migrated to {args.revision}")
    return 0


def cmd_command_api(settings: Settings, args: argparse.Namespace) -> int:
    return _serve(
        "command_side.app:create_app",
        settings,
        args.host or settings.command_host,
        args.port or settings.command_port,
        "command-api",
    )


def cmd_query_api(settings: Settings, args: argparse.Namespace) -> int:
    return _serve(
        "query_side.app:create_app",
        settings,
        args.host or settings.query_host,
        args.port or settings.query_port,
        "query-api",
    )


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    from command_side.relay import run_relay
    from orderdesk import heap
    from orderdesk.logs import configure_logging
    from orderdesk.servers import runtime_servers

    configure_logging("relay", settings.log_level, settings.log_format)
    with runtime_servers(settings) as resolved:
        heap.settle()
        run_relay(resolved)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from orderdesk import heap
    from orderdesk.logs import configure_logging
    from orderdesk.servers import runtime_servers
    from projections.worker import run_worker

    configure_logging("worker", settings.log_level, settings.log_format)
    with runtime_servers(settings) as resolved:
        heap.settle()
        return run_worker(resolved, threads=args.threads, metrics_port=args.metrics_port)


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from orderdesk.dev import run_dev

    return run_dev(settings)


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from orderdesk.auth import mint_token

    roles = [r for group in args.role for r in group.split(",") if r]
    try:
        print(mint_token(settings, args.sub, roles, args.ttl))
    except ValueError as exc:
        print(f"orderdesk token: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_projections(settings: Settings, args: argparse.Namespace) -> int:
    from orderdesk.logs import configure_logging
    from orderdesk.servers import runtime_servers
    from projections import admin as admin

    configure_logging("projections", "WARNING", "text")
    with runtime_servers(settings) as resolved:
        if args.action == "status":
            return admin.status(resolved, as_json=args.json)
        if args.action == "rebuild":
            return admin.rebuild(resolved, names=args.names, all_=args.all)
        return admin.retry(resolved, name=args.name)


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from orderdesk.logs import configure_logging
    from orderdesk.servers import runtime_servers

    configure_logging("seed", "WARNING", "text")
    from command_side.seed import seed

    with runtime_servers(settings) as resolved:
        return seed(resolved, orders=args.orders)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by tests of the CLI)."""
    parser = argparse.ArgumentParser(prog="orderdesk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[Settings, argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("migrate", cmd_migrate, "migrate the database(s) to the newest schema")
    p.add_argument("--revision", default="head")
    for name, func, what in (
        ("command-api", cmd_command_api, "the command (write) API"),
        ("query-api", cmd_query_api, "the query (read) API"),
    ):
        p = add(name, func, f"run {what}")
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=None)
    add("relay", cmd_relay, "run the relay: wakes the projectors when events are committed")
    p = add("worker", cmd_worker, "run the Dramatiq worker that applies projections")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--metrics-port", type=int, default=None)
    add("dev", cmd_dev, "run the whole stack in one terminal (embedded servers by default)")
    p = add("token", cmd_token, "mint a JWT with the configured key (for development)")
    p.add_argument("--sub", required=True, help="subject: the customer or staff id")
    p.add_argument(
        "--role",
        action="append",
        required=True,
        help="customer, staff or admin (repeat or comma-separate)",
    )
    p.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    p = add("projections", cmd_projections, "projection status, rebuild and retry")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ps = psub.add_parser("status", help="one line per projection")
    ps.add_argument("--json", action="store_true")
    pr = psub.add_parser("rebuild", help="rebuild into shadow tables, then swap")
    pr.add_argument("names", nargs="*")
    pr.add_argument("--all", action="store_true")
    pt = psub.add_parser("retry", help="resume a stalled projection")
    pt.add_argument("name")
    p = add("seed", cmd_seed, "fill a demo catalog, stock and some orders")
    p.add_argument("--orders", type=int, default=25)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    if (
        args.command == "projections"
        and args.action == "rebuild"
        and (bool(args.names) == bool(args.all))
    ):
        print("orderdesk projections rebuild: give projection NAME(s) or --all", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"orderdesk: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = args.func(settings, args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
