"""A normal run prints only what the user asked for: third-party warnings and log lines are silenced here, in one
place, unless the user asks for them (`tecorag -v`, or `verbose=True`)."""

from __future__ import annotations

import logging
import warnings

_verbose = False

# Messages that libraries we depend on print on every run and that a user can do nothing about.
_SILENCED_WARNINGS = (
    "pkg_resources is deprecated",          # milvus_lite 2.5 imports pkg_resources
)


def configure(verbose: bool = False) -> None:
    """Silence third-party chatter (or, verbose, show everything from INFO up on stderr)."""
    global _verbose
    _verbose = verbose
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return
    for message in _SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("RapidOCR", "pymilvus", "milvus_lite", "httpx", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def pymilvus_logs() -> None:
    """Silence pymilvus's log lines; call after importing pymilvus, whose import configures its own loggers (level
    WARNING, INFO for its client) over whatever `configure` set. It logs every failed RPC with the engine's raw
    words; the exception reaches the user anyway, through tecorag's own error naming what failed."""
    if not _verbose:
        for name in ("pymilvus", "pymilvus.milvus_client"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

