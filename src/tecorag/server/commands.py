"""`tecorag serve`: the API and the web UI in one uvicorn process."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Optional

import typer

log = logging.getLogger("tecorag.server")

# After the grace period, the app's shutdown gets this long: running upload jobs get their 5 s to reach a file
# boundary and hand their lease back (IngestJobRunner.shutdown), then Milvus and the catalog are closed.
SHUTDOWN_MARGIN_S = 6.0


def exit_after_shutdown_starts(server: Any, seconds: float) -> None:
    """SIGTERM (or Ctrl-C) stops the process within `seconds`: uvicorn stops taking requests and gives open ones
    the grace period, but a worker thread still inside one step of the pipeline (an embedding, an LLM call,
    an upload being indexed) would hold the exit until it finishes. Ingestion is crash-consistent (the next
    run repairs a half-indexed file), so such threads are not waited for."""

    def watch() -> None:
        while not server.should_exit:
            time.sleep(0.1)
        time.sleep(seconds)
        log.warning("still busy %.0f s after the shutdown began; exiting without waiting for it", seconds)
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=watch, name="tecorag-exit-watchdog", daemon=True).start()


def add_serve_command(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: Optional[str] = typer.Option(None, "--host", help="default: server.api_server_host "
                                                               "(APP_SERVER_API_SERVER_HOST)"),
        port: Optional[int] = typer.Option(None, "--port", help="default: server.api_server_port "
                                                               "(APP_SERVER_API_SERVER_PORT)"),
        log_level: Optional[str] = typer.Option(None, "--log-level", help="uvicorn log level (default: warning; "
                                                                          "info with tecorag -v)"),
    ) -> None:
        """Serve the HTTP API (Teco-RAG compatible, OpenAI-compatible) and the web UI at http://HOST:PORT/."""
        import uvicorn

        from ..config import load_settings
        from .app import create_app

        settings = load_settings(ctx.find_root().params.get("config"))
        bind_host = host or settings.server.api_server_host
        bind_port = port or settings.server.api_server_port
        typer.echo(f"tecorag: web UI http://{bind_host}:{bind_port}/  API docs http://{bind_host}:{bind_port}/docs",
                   err=True)
        level = log_level or ("info" if ctx.find_root().params.get("verbose") else "warning")
        grace = settings.server.shutdown_grace_s
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host=bind_host, port=bind_port,
                                               log_level=level, timeout_graceful_shutdown=grace))
        exit_after_shutdown_starts(server, grace + SHUTDOWN_MARGIN_S)
        try:
            server.run()
        except KeyboardInterrupt:   # uvicorn re-raises the Ctrl-C it handled; as uvicorn.run, end quietly
            pass

