"""``hybridgate audit``: verify the tamper-evident log, export it with proofs, make a
signing key, and prune what is past retention."""

from __future__ import annotations

import secrets
import sys
import time

import click

from hybridgate.cli.report_cmd import ledger_url, open_store
from hybridgate.config.settings import ConfigError, load_config
from hybridgate.ledger.audit import load_private_key, public_hex
from hybridgate.ledger.audit_verify import export, prune, verify
from hybridgate.ledger.report import parse_since


def _public_key(config_path: str | None, given: str | None) -> str | None:
    """The key to check signatures with: given, or derived from the config's seed."""
    if given:
        return given
    if config_path:
        try:
            seed = load_config(config_path).ledger.audit.signing_key
        except ConfigError as e:
            raise click.ClickException(str(e)) from None
        if seed:
            return public_hex(load_private_key(seed))
    return None


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None


_config = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False))
_ledger = click.option("--ledger", "url", default=None, help="Ledger URL (default: the config's).")
_key = click.option("--public-key", default=None,
                    help="ed25519 public key (hex) to check head signatures with "
                         "(default: derived from the config's audit.signing_key).")


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@_config
@_ledger
@_key
@click.option("--since", default=None, help="Start at the last signed head before this "
                                            "(a span like 30d, or a date).")
def verify_cmd(config_path: str | None, url: str | None, public_key: str | None,
               since: str | None) -> None:
    """Check the hash chain, every tree head (root, chain hash, signature) and each
    record against its ledger row; name the first bad record. Exit 1 if any."""
    store = open_store(ledger_url(config_path, url))
    try:
        v = verify(store, _public_key(config_path, public_key), _since(since))
    finally:
        store.close()
    for w in dict.fromkeys(v.warnings):
        click.echo(f"warning: {w}", err=True)
    if v.first_bad is not None:
        click.echo(f"FAILED: {v.first_bad}")
        sys.exit(1)
    click.echo(f"OK: {v.records} records, {v.heads} tree heads ({v.signed} signatures "
               "checked)")


@audit.command("export")
@_config
@_ledger
@_key
@click.option("--since", default="30d", show_default=True)
@click.option("--out", type=click.File("w"), default="-", help="JSONL file (default stdout).")
def export_cmd(config_path: str | None, url: str | None, public_key: str | None,
               since: str, out: object) -> None:
    """Records since --since as JSONL with their inclusion proofs, and every tree head
    with its consistency proof: scripts/audit_check.py checks it without hybridgate."""
    store = open_store(ledger_url(config_path, url))
    try:
        for line in export(store, _since(since) or 0.0, _public_key(config_path, public_key)):
            out.write(line + "\n")  # type: ignore[attr-defined]
    finally:
        store.close()


@audit.command("keygen")
def keygen() -> None:
    """A new ed25519 signing key: the seed (for audit.signing_key) on stdout, the public
    key (for verifiers) on stderr."""
    seed = secrets.token_hex(32)
    click.echo(seed)
    click.echo(f"public key: {public_hex(load_private_key(seed))}", err=True)


@audit.command("prune")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False))
def prune_cmd(config_path: str) -> None:
    """Drop records older than audit.retention_days, back to a tree head (the log still
    verifies from there)."""
    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    store = open_store(ledger_url(config_path, None))
    try:
        cut = prune(store, time.time() - cfg.ledger.audit.retention_days * 86400)
    finally:
        store.close()
    click.echo(f"pruned records 0 to {cut - 1}" if cut else "nothing past retention")
