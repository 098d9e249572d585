"""``hybridgate cache clear``: empty the shared answer cache."""

from __future__ import annotations

import asyncio

import click

from hybridgate.cache.exact import clear as clear_shared
from hybridgate.config.settings import ConfigError, load_config


@click.group()
def cache() -> None:
    """The answer cache."""


@cache.command("clear")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False))
def clear(config_path: str) -> None:
    """Drop every cached answer in the Redis the config names (each gateway without
    `redis:` keeps its own cache in memory, emptied by a restart)."""
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if cfg.redis is None:
        raise click.ClickException("no redis: in the config; an in-process cache is "
                                   "emptied by restarting the gateway")
    click.echo(f"cleared {asyncio.run(clear_shared(cfg.redis))} cached answers")
