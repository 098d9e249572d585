"""Entry point: ``hybridgate serve | chat | models``."""

from __future__ import annotations

import click
import uvicorn

from hybridgate import __version__
from hybridgate.cli.chat_cmd import chat
from hybridgate.cli.economics_cmd import economics
from hybridgate.cli.models_cmd import models, pull_with_progress
from hybridgate.cli.report_cmd import report
from hybridgate.cli.router_cmd import router
from hybridgate.config.settings import (
    Config,
    ConfigError,
    LocalModel,
    ServerConfig,
    default_config,
    load_config,
)
from hybridgate.core.logs import configure_logging
from hybridgate.models import store
from hybridgate.models.catalog import get_model


@click.group()
@click.version_option(__version__)
def cli() -> None:
    """hybridgate: a local-first, OpenAI-compatible LLM gateway."""


def _ensure_pulled(cfg: Config, pull: bool) -> None:
    """Catalog models must be on disk before we start; pull them only when asked."""
    for m in cfg.models:
        if isinstance(m, LocalModel) and get_model(m.model) is not None \
                and not store.model_path(m.model).exists():
            if not pull:
                raise click.ClickException(
                    f"model {m.model} is not pulled; run `hybridgate models pull {m.model}` "
                    "or start with --pull")
            pull_with_progress(m.model)


@cli.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="YAML config; without it: the default local model only.")
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.option("--model", "local_model", default=None,
              help="Zero-config only: which catalog model to serve locally.")
@click.option("--pull", is_flag=True, help="Pull missing catalog models first.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
def serve(config_path: str | None, host: str | None, port: int | None,
          local_model: str | None, pull: bool, log_format: str | None) -> None:
    """Start the gateway."""
    from hybridgate.api.app import create_app

    try:
        cfg = load_config(config_path) if config_path else default_config(
            local_model or default_config().models[0].name)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    server = cfg.server
    cfg.server = ServerConfig(host=host or server.host,
                              port=port if port is not None else server.port,
                              max_body_bytes=server.max_body_bytes,
                              log_format=log_format or server.log_format)  # type: ignore[arg-type]
    configure_logging(cfg.server.log_format)
    _ensure_pulled(cfg, pull)
    from hybridgate.routing.router import RouterFileError

    try:
        app = create_app(cfg)
    except (RouterFileError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    uvicorn.run(app, host=cfg.server.host, port=cfg.server.port, loop="uvloop",
                http="httptools", access_log=False, log_config=None, lifespan="on")


cli.add_command(chat)
cli.add_command(models)
cli.add_command(report)
cli.add_command(economics)
cli.add_command(router)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
