"""`tecorag serve`: the API and the web UI in one uvicorn process."""

from __future__ import annotations

from typing import Optional

import typer


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
        uvicorn.run(create_app(settings), host=bind_host, port=bind_port, log_level=level)
