"""Entry point: ``hybridgate serve | chat | models | report | economics | router | keys``."""

from __future__ import annotations

import json
import os
import shutil

import click
import msgspec
import uvicorn

from hybridgate import __version__
from hybridgate.cli.audit_cmd import audit
from hybridgate.cli.budgets_cmd import budgets
from hybridgate.cli.cache_cmd import cache
from hybridgate.cli.chat_cmd import chat
from hybridgate.cli.economics_cmd import economics
from hybridgate.cli.keys_cmd import keys
from hybridgate.cli.models_cmd import models, pull_with_progress
from hybridgate.cli.report_cmd import report
from hybridgate.cli.router_cmd import router
from hybridgate.config.settings import (
    DEFAULT_LOCAL_MODEL,
    Config,
    ConfigError,
    LocalModel,
    TransformersModel,
    default_config,
    hybridgate_home,
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
        if isinstance(m, LocalModel | TransformersModel) and get_model(m.model) is not None \
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
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port. Each loads its own local models "
                   "and ledger writer: use it for remote-heavy traffic.")
def serve(config_path: str | None, host: str | None, port: int | None,
          local_model: str | None, pull: bool, log_format: str | None, workers: int) -> None:
    """Start the gateway."""
    args = {"config_path": config_path, "host": host, "port": port,
            "local_model": local_model, "log_format": log_format}
    try:
        cfg = build_config(**args)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    configure_logging(cfg.server.log_format)
    _ensure_pulled(cfg, pull)
    if workers > 1:
        _metrics_dir(cfg.server.port)
    from hybridgate.routing.router import RouterFileError

    try:
        app = make_app(cfg)  # also proves the config and router files load before forking
    except (RouterFileError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    common = {"host": cfg.server.host, "port": cfg.server.port, "loop": "uvloop",
              "http": "httptools", "access_log": False, "log_config": None, "lifespan": "on"}
    if workers == 1:
        uvicorn.run(app, **common)
        return
    # Workers rebuild the same config from the same arguments (secrets stay in the
    # environment they came from, not in a serialized copy).
    os.environ[_SERVE_ARGS] = json.dumps(args)
    uvicorn.run("hybridgate.cli.main:worker_app", factory=True, workers=workers, **common)


_SERVE_ARGS = "HYBRIDGATE_SERVE_ARGS"
_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode


def _metrics_dir(port: int) -> None:
    """Workers write their metrics to files a scrape of any of them adds up; set before
    prometheus-client is first imported, emptied so a restart starts from zero."""
    if os.environ.get(_MULTIPROC):
        return
    path = hybridgate_home() / "metrics" / str(port)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[_MULTIPROC] = str(path)


def build_config(config_path: str | None, host: str | None, port: int | None,
                 local_model: str | None, log_format: str | None) -> Config:
    cfg = load_config(config_path) if config_path else default_config(
        local_model or DEFAULT_LOCAL_MODEL)
    server = cfg.server
    cfg.server = msgspec.structs.replace(
        server, host=host or server.host, port=port if port is not None else server.port,
        log_format=log_format or server.log_format)
    return cfg


def make_app(cfg: Config):  # type: ignore[no-untyped-def]
    from hybridgate.api.app import create_app

    return create_app(cfg)


def worker_app():  # type: ignore[no-untyped-def]
    """Entry point of each ``--workers`` process (uvicorn's app factory)."""
    cfg = build_config(**json.loads(os.environ[_SERVE_ARGS]))
    configure_logging(cfg.server.log_format)
    return make_app(cfg)


cli.add_command(chat)
cli.add_command(models)
cli.add_command(report)
cli.add_command(economics)
cli.add_command(router)
cli.add_command(keys)
cli.add_command(budgets)
cli.add_command(audit)
cli.add_command(cache)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
