"""`expansion sandbox`: start the CRM sandbox, print the URLs, the CA file and the credentials to
use, and serve until interrupted."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from sandbox.config import SandboxConfig, Webhooks
from sandbox.seed import SeedError


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8443,
    show_default=True,
    envvar="SANDBOX_PORT",
    help="0 picks a free port.",
)
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/sandbox"),
    show_default=True,
    help="Where the generated CA certificate (ca.pem) is written.",
)
@click.option(
    "--seed",
    "seed_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A seed JSON: owners, accounts, extra fields.",
)
@click.option(
    "--hubspot-webhook-url",
    help="Receiver URL for HubSpot events, e.g. http://127.0.0.1:8000/webhooks/hubspot",
)
@click.option("--salesforce-webhook-url", help="Receiver URL for Salesforce Outbound Messages.")
@click.option(
    "--hubspot-specs",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="HubSpot OpenAPI specs dir: bodies are checked, violations shown in the log.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the connection details as JSON.")
def sandbox_command(
    host: str,
    port: int,
    tls_dir: Path,
    seed_file: Path | None,
    hubspot_webhook_url: str | None,
    salesforce_webhook_url: str | None,
    hubspot_specs: Path | None,
    as_json: bool,
) -> None:
    """Serve the CRM sandbox: the Salesforce REST and HubSpot CRM APIs the writers use, over
    HTTPS with a local CA, with fault injection (/_sandbox/faults) and a tasks page."""
    from sandbox.server import start

    try:
        config = SandboxConfig(
            host=host,
            port=port,
            tls_dir=tls_dir,
            seed_file=seed_file,
            hubspot_spec_dir=hubspot_specs,
            webhooks=Webhooks(
                hubspot_url=hubspot_webhook_url, salesforce_url=salesforce_webhook_url
            ),
        )
        running = start(config)
    except (ValidationError, SeedError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    info = running.describe()
    click.echo(json.dumps(info, indent=2) if as_json else _text(info))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping the sandbox")
    finally:
        running.stop()


def _text(info: dict[str, Any]) -> str:
    sf, hs = info["salesforce"], info["hubspot"]
    return "\n".join(
        [
            f"CRM sandbox on {info['base_url']} (Ctrl-C to stop)",
            f"  trust this CA:   {info['ca_path']}",
            f"  tasks page:      {info['tasks_page']}",
            f"  admin API:       {info['admin_url']} (requests, faults, limits, webhooks, seed)",
            "Salesforce",
            f"  instance_url:    {sf['instance_url']}  (API v{sf['api_version']})",
            f"  session_id:      {sf['session_id']}",
            f"  token endpoint:  {sf['token_url']}",
            f"  client id/secret {sf['client_id']} / {sf['client_secret']}",
            f"  user / password  {sf['username']} / {sf['password']}",
            f"  org / int. user  {sf['org_id']} / {sf['integration_user_id']}",
            "HubSpot",
            f"  host:            {hs['host']}",
            f"  access_token:    {hs['access_token']}",
            f"  app / portal:    {hs['app_id']} / {hs['portal_id']}",
            f"  client secret:   {hs['client_secret']} (signs the webhooks, v3)",
        ]
    )
