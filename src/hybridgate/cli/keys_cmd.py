"""``hybridgate keys``: make gateway keys without ever writing the secret to a file."""

from __future__ import annotations

import re
import sys

import click

from hybridgate.gate.auth import digest, new_key


@click.group()
def keys() -> None:
    """Gateway API keys."""


@keys.command("new")
@click.option("--id", "key_id", required=True, help="Name shown in the ledger and reports.")
@click.option("--tenant", default=None, help="A tenant from the config's `tenants:`.")
def new(key_id: str, tenant: str | None) -> None:
    """Print a fresh random key (once: only its hash goes in the config).

    The secret goes to stdout, the config entry to stderr, so
    `hybridgate keys new --id ci > ci.key` keeps the secret in one file.
    """
    if not re.fullmatch(r"[\w.@-]{1,64}", key_id):
        raise click.BadParameter("letters, digits and ._@- only, at most 64", param_hint="--id")
    key = new_key()
    click.echo(key)
    entry = f"  - id: {key_id}\n    key_sha256: {digest(key)}\n"
    if tenant:
        entry += f"    tenant: {tenant}\n"
    click.echo("# add to your config under `keys:`\n" + entry, file=sys.stderr, nl=False)


@keys.command("hash")
def hash_() -> None:
    """Read a key on stdin and print its key_sha256 (for keys you already have)."""
    key = sys.stdin.readline().strip()
    if not key:
        raise click.ClickException("no key on stdin")
    click.echo(digest(key))
