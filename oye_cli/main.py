"""The ``oye`` command: ``oye up`` runs the whole stack; one subcommand per service;
``oye simulate`` runs simulated chargers."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from oye_cli import simulate

#: Service name -> module with a ``main()``. A service whose module is not installed yet
#: is simply absent from ``oye up``.
SERVICES = {
    "relay": "oye_relay.main",
    "inject-api": "oye_api.main",
    "logger": "oye_logger.main",
}


def available_services() -> list[str]:
    return [name for name, module in SERVICES.items() if _has_module(module)]


def _has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oye",
        description="OYE Proxy: a transparent OCPP-J proxy. Configure with OYE_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "up", help="run the whole stack in the foreground (embedded NATS unless NATS_URL)"
    )
    for name in SERVICES:
        commands.add_parser(name, help=f"run the {name} service alone")
    simulate.add_arguments(
        commands.add_parser("simulate", help="run simulated OCPP 1.6 / 2.0.1 chargers")
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from oye_cli.supervisor import main as up

        up()
    elif args.command == "simulate":
        sys.exit(simulate.main(args))
    else:
        module = SERVICES[args.command]
        if not _has_module(module):
            sys.exit(f"the {args.command} service is not part of this version")
        importlib.import_module(module).main()


if __name__ == "__main__":
    main()
