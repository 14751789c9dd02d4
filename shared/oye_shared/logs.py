"""Logging set-up shared by every service: one line per event, the service in each line."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # websockets logs every failed handshake at INFO and every error with a traceback.
    logging.getLogger("websockets").setLevel(max(logging.getLevelName(level), logging.WARNING))
