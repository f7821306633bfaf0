"""`jobrelay keys add|list|revoke|webhook-secret`: API keys and tenants' webhook secrets, in the shared key file.

The running intake, projector and notifier re-read the file within `JOBRELAY_AUTH_RELOAD_S`, so
a key added or revoked here takes effect without a restart. A new key is printed once; the file
keeps only its hash.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from jobrelay.config.settings import AuthSettings
from jobrelay.security.keys import KeyFile, Scope

__all__ = ["keys_app"]

keys_app = typer.Typer(help="API keys (tenants, scopes) and tenants' webhook signing secrets.", no_args_is_help=True)
console = Console()
DEFAULT_SCOPES = [Scope.SUBMIT, Scope.READ, Scope.CANCEL]


def _file() -> KeyFile:
    return KeyFile(AuthSettings().keys_file)


@keys_app.command("add")
def add(
    tenant: str = typer.Argument(..., help="The tenant the key belongs to."),
    scope: list[Scope] = typer.Option(
        DEFAULT_SCOPES, "--scope", "-s", help="Repeat for several (default: submit, read, cancel)."
    ),
) -> None:
    """Create a key for TENANT and print it (once: only its hash is kept)."""
    if not tenant.strip() or any(c.isspace() for c in tenant):
        console.print("[red]the tenant must be a non-empty name without spaces[/red]")
        raise typer.Exit(2)
    text, entry = _file().add(tenant, tuple(dict.fromkeys(scope)))
    typer.echo(text)
    console.print(f"key {entry.key_id} for tenant {tenant}: {', '.join(s.value for s in entry.scopes)}", style="dim")


@keys_app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")) -> None:
    """Every key: id, tenant, scopes, created, revoked (never the key itself)."""
    keys = _file().read().keys.values()
    if as_json:
        for k in keys:
            record = {"id": k.key_id, "tenant": k.tenant, "scopes": [s.value for s in k.scopes]}
            typer.echo(json.dumps(record | {"created_at": k.created_at, "revoked_at": k.revoked_at}))
        return
    table = Table(title="API keys")
    for column in ("id", "tenant", "scopes", "created", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(k.key_id, k.tenant, ",".join(s.value for s in k.scopes), k.created_at, k.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (`jobrelay keys list`).")) -> None:
    """Revoke a key: the services refuse it within a few seconds."""
    try:
        entry = _file().revoke(key_id)
    except KeyError:
        console.print(f"[red]no key {key_id}[/red]")
        raise typer.Exit(1) from None
    console.print(f"key {entry.key_id} of tenant {entry.tenant} revoked at {entry.revoked_at}")


@keys_app.command("webhook-secret")
def webhook_secret(
    tenant: str = typer.Argument(..., help="The tenant whose deliveries are signed."),
    rotate: bool = typer.Option(False, "--rotate", help="Add a new secret; the previous one keeps signing too."),
) -> None:
    """Print the tenant's webhook signing secrets, newest first (created on first use)."""
    for secret in _file().webhook_secrets(tenant, rotate=rotate):
        typer.echo(secret)
