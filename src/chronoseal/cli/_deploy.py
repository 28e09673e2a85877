"""``chronoseal deploy render``: Kubernetes or Gramine manifests for a scenario's task."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from chronoseal.deploy import (
    DEFAULT_RESOURCES,
    DeployInput,
    K8sOptions,
    PartyInput,
    Resources,
    default_image,
    parse_validators,
    render_gramine,
    render_k8s,
)
from chronoseal.errors import ChronosealError, ConfigError
from chronoseal.node import Scenario, bundled_scenario, load_scenario

from ._output import console, err_console, fail

deploy_app = typer.Typer(help="Deployment manifests (Kubernetes, Gramine) for a task.")


class Target(StrEnum):
    K8S = "k8s"
    GRAMINE = "gramine"


def deploy_input(scenario: Scenario, validators: Path | None = None) -> DeployInput:
    """The scenario's task spec and party configs as the components' pods will read them,
    and the members' validators file if one is given."""

    def text(path: Path, what: str) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read {what} {path}: {exc}", id="config.file.invalid"
            ) from exc

    return DeployInput(
        spec=scenario.spec,
        spec_text=text(scenario.spec_path, "task spec"),
        parties={
            name: PartyInput(
                name=name,
                config=config,
                config_text=text(scenario.party_paths[name], "party config"),
            )
            for name, config in sorted(scenario.parties.items())
        },
        workers=scenario.workers,
        members=tuple(scenario.members),
        validators=None
        if validators is None
        else parse_validators(text(validators, "validators file"), str(validators)),
    )


@deploy_app.command("render")
def render(
    target: Annotated[Target, typer.Option(help="k8s manifests or Gramine SGX manifests")],
    out: Annotated[Path, typer.Option(help="directory to write the files into")],
    scenario: Annotated[
        Path | None, typer.Option(help="scenario TOML (default: the bundled Chicago scenario)")
    ] = None,
    image: Annotated[str | None, typer.Option(help="container image of chronoseal")] = None,
    sgx_image: Annotated[
        str | None, typer.Option(help="graminized image for SGX components (default gsc-IMAGE)")
    ] = None,
    chain_url: Annotated[
        str | None, typer.Option(help="JSON-RPC URL of the consortium chain node")
    ] = None,
    contract: Annotated[
        str | None, typer.Option(help="address of the consortium contract (default: placeholder)")
    ] = None,
    namespace_prefix: Annotated[
        str, typer.Option(help="namespaces are PREFIX-<party> and PREFIX-runtime")
    ] = "chronoseal",
    storage: Annotated[str, typer.Option(help="state volume size per stateful component")] = "1Gi",
    cpu: Annotated[
        str | None, typer.Option(help="CPU request = limit of every container (default per kind)")
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(help="memory request = limit of every container (default per kind)"),
    ] = None,
    validators: Annotated[
        Path | None,
        typer.Option(
            help="the members' validators (signer address, node id each): render a validator "
            "per member and point each party's components at its own"
        ),
    ] = None,
) -> None:
    """Render manifests for the scenario's task into OUT, one file per component."""
    try:
        inp = deploy_input(load_scenario(scenario or bundled_scenario()), validators)
        if target == Target.GRAMINE:
            rendered = render_gramine(inp)
        else:
            resources = {
                kind: Resources(
                    cpu or r.cpu_request,
                    memory or r.memory_request,
                    cpu or r.cpu_limit,
                    memory or r.memory_limit,
                )
                for kind, r in DEFAULT_RESOURCES.items()
            }
            options = K8sOptions(
                image=image or default_image(),
                sgx_image=sgx_image,
                chain_url=chain_url or K8sOptions.chain_url,
                contract=contract,
                namespace_prefix=namespace_prefix,
                storage=storage,
                resources=resources,
            )
            rendered = render_k8s(inp, options)
        written = rendered.write(out)
    except ChronosealError as exc:
        fail(exc)
    for path in written:
        console.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)
    stale = sorted(p.name for p in out.iterdir() if p.name not in rendered.files)
    if stale:
        err_console.print(
            f"[bold yellow]warning[/] {escape(str(out))} also holds files this render did not "
            f"write: {escape(', '.join(stale))}; remove them before applying the directory",
            highlight=False,
            soft_wrap=True,
        )
    for warning in rendered.warnings:
        err_console.print(
            f"[bold yellow]warning[/] {escape(warning)}", highlight=False, soft_wrap=True
        )
