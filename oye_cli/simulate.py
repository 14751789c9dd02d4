"""``oye simulate``: simulated OCPP 1.6 / 2.0.1 chargers against the proxy or any CSMS.

The command line lives here (cheap to import: ``oye`` builds its parser on every call);
the chargers are :mod:`oye_cli.simulator`, imported when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oye_cli.simulator.fleet import FleetConfig

DEFAULT_URL = "ws://127.0.0.1:9000/ocpp"
PASSWORD_VARIABLE = "OYE_SIM_PASSWORD"
MAX_ID_TAG = 20  # 1.6 idTag is CiString20

DESCRIPTION = """\
Run one or many simulated chargers (OCPP 1.6 or 2.0.1) against the proxy or a CSMS.
Each connects to URL/<id> (the id percent-encoded), boots, reports its connectors, sends
Heartbeats, and answers what the CSMS or an injection asks: GetConfiguration and
ChangeConfiguration (1.6), GetVariables and SetVariables (2.0.1), SetChargingProfile,
ClearChargingProfile, GetCompositeSchedule (computed from the profiles it was given),
Reset (it reboots), remote start and stop, TriggerMessage, ChangeAvailability,
UnlockConnector, DataTransfer, the local list and reservations (2.0.1: also
GetChargingProfiles, GetTransactionStatus, GetBaseReport). A dropped connection is
retried with backoff. Ctrl-C or SIGTERM stops it (exit status 0); a refusal that
retrying cannot fix (HTTP 401/403) ends with status 1."""

EPILOG = f"""\
password: Basic auth (user = the charger id) with the password in ${PASSWORD_VARIABLE},
or typed after --ask-password; it is never printed.

examples:
  oye simulate                                  # SIM-1, OCPP 1.6, {DEFAULT_URL}/SIM-1
  oye simulate --ocpp 2.0.1 --id CP201 --charge --meter-interval 10
  oye simulate --id BOX --count 50 --quiet      # BOX-1 ... BOX-50
  {PASSWORD_VARIABLE}=... oye simulate wss://csms.example.com/ocpp --id MY-BOX"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {value}")
    return value


def _url(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"{text!r} is no ws:// or wss:// URL")
    return text


def _id_tag(text: str) -> str:
    if not 1 <= len(text) <= MAX_ID_TAG:
        raise argparse.ArgumentTypeError(f"an id tag has 1 to {MAX_ID_TAG} characters")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``oye simulate``."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "url",
        nargs="?",
        default=DEFAULT_URL,
        type=_url,
        help=f"the proxy's or CSMS's OCPP URL, without the charger id (default {DEFAULT_URL})",
    )
    who = parser.add_argument_group("chargers")
    who.add_argument(
        "--id", default="SIM-1", help="charge point id (default SIM-1); with --count: the prefix"
    )
    who.add_argument(
        "--count",
        type=_positive_int,
        default=1,
        metavar="N",
        help="how many chargers: ids ID-1 ... ID-N when N > 1 (default 1)",
    )
    who.add_argument(
        "--ocpp", choices=["1.6", "2.0.1"], default="1.6", help="OCPP version (default 1.6)"
    )
    who.add_argument(
        "--connectors",
        type=_positive_int,
        default=1,
        metavar="N",
        help="connectors (1.6) / EVSEs (2.0.1) per charger (default 1)",
    )
    who.add_argument(
        "--max-current",
        type=_positive_int,
        default=32,
        metavar="A",
        help="hardware limit per phase in A, the composite schedule without profiles (32)",
    )
    who.add_argument("--vendor", default="OYE", help="vendor in BootNotification (OYE)")
    who.add_argument("--model", default="Simulator", help="model in BootNotification (Simulator)")
    who.add_argument(
        "--ask-password",
        action="store_true",
        help=f"prompt for the Basic auth password (instead of ${PASSWORD_VARIABLE})",
    )
    what = parser.add_argument_group("behaviour")
    what.add_argument(
        "--heartbeat",
        type=_seconds,
        metavar="SECONDS",
        help="Heartbeat interval (default: the interval of the CSMS's boot answer; 0: none)",
    )
    what.add_argument(
        "--charge",
        action="store_true",
        help="after the first boot, plug in and charge on connector 1 with --id-tag",
    )
    what.add_argument(
        "--id-tag",
        type=_id_tag,
        default="OYE-SIM",
        metavar="TAG",
        help="id tag (1.6) / ISO14443 idToken (2.0.1) of --charge (default OYE-SIM)",
    )
    what.add_argument(
        "--meter-interval",
        type=_seconds,
        metavar="SECONDS",
        help="meter values during a session every SECONDS (default: the charger's "
        "MeterValueSampleInterval / TxUpdatedInterval, 60, which the CSMS may change)",
    )
    what.add_argument(
        "--reconnect-max",
        type=_positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait between reconnection attempts (default 30)",
    )
    output = parser.add_argument_group("output").add_mutually_exclusive_group()
    output.add_argument("-q", "--quiet", action="store_true", help="events only, no line per frame")
    output.add_argument(
        "-v", "--verbose", action="store_true", help="frames in full, and debugging details"
    )


class _LineFormatter(logging.Formatter):
    """``12:00:01 SIM-1 -> CALL Heartbeat {}``; the level only when it is a problem."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno >= logging.WARNING:
            time, _, rest = line.partition(" ")
            line = f"{time} {record.levelname} {rest}"
        return line


def configure_output(*, quiet: bool, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("oye.simulate").setLevel(logging.INFO)
    frames = logging.getLogger("oye.simulate.frames")
    frames.setLevel(logging.WARNING if quiet else logging.INFO)
    if verbose:
        logging.getLogger("oye_cli").setLevel(logging.DEBUG)
        logging.getLogger("oye.simulate").setLevel(logging.DEBUG)


def _password(args: argparse.Namespace) -> str | None:
    if args.ask_password:
        return getpass.getpass(f"Basic auth password for {args.id}: ")
    return os.environ.get(PASSWORD_VARIABLE) or None


def fleet_config(args: argparse.Namespace, password: str | None) -> FleetConfig:
    from oye_cli.simulator.fleet import FleetConfig, charger_ids
    from oye_cli.simulator.runner import Plan

    return FleetConfig(
        base_url=args.url,
        ids=charger_ids(args.id, args.count),
        version=args.ocpp,
        password=password,
        connectors=args.connectors,
        max_current=args.max_current,
        vendor=args.vendor,
        model=args.model,
        plan=Plan(
            charge=args.charge,
            id_tag=args.id_tag,
            heartbeat=args.heartbeat,
            meter_interval=args.meter_interval,
        ),
        reconnect_max=args.reconnect_max,
        log_frames=not args.quiet,
        frame_width=None if args.verbose else 200,
    )


async def _run(config: FleetConfig) -> int:
    from oye_cli.simulator.fleet import STOP_DEADLINE, run_fleet

    log = logging.getLogger("oye.simulate")
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.info("%s: already stopping (at most %.0f s)", name, STOP_DEADLINE)
        else:
            log.info("%s: stopping", name)
            stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run_fleet(config, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(args: argparse.Namespace) -> int:
    """Run ``oye simulate`` with parsed ``args``; the exit status."""
    configure_output(quiet=args.quiet, verbose=args.verbose)
    config = fleet_config(args, _password(args))
    return asyncio.run(_run(config))
