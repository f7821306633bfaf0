"""The deployment files say only what jobrelay understands (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import typer.main
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from jobrelay.cli.main import app
from jobrelay.cli.settingsdoc import SECTIONS
from jobrelay.dev.localkafka import project_root
from jobrelay.dev.stack import Stack

ROOT = project_root()
SETTINGS: list[type[BaseSettings]] = [cls for _, cls in SECTIONS]  # every class `jobrelay settings` shows


def known_variables() -> set[str]:
    """Every environment variable some settings class reads."""
    names: set[str] = set()
    for cls in SETTINGS:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(choice).upper() for choice in alias.choices)
            else:
                names.add(f"{prefix}{name}".upper())
    return names


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def resolves(argv: list[str]) -> bool:
    """Whether `jobrelay <argv>` names an existing command."""
    command: Any = typer.main.get_command(app)  # typer ships its own click: duck-type the groups
    for word in argv:
        if not hasattr(command, "get_command"):
            return False
        command = command.get_command(click.Context(command), word)
        if command is None:
            return False
    return True


def jobrelay_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in compose()["services"].items() if spec.get("image") == "jobrelay:local"}


def test_compose_runs_the_four_services_and_the_topic_init() -> None:
    commands = {name: spec["command"] for name, spec in jobrelay_services().items()}
    assert commands == {
        "topics-init": ["jobrelay", "topics", "ensure"],
        "intake": ["jobrelay", "intake"],
        "processor": ["jobrelay", "processor"],
        "projector": ["jobrelay", "projector"],
        "notifier": ["jobrelay", "notifier"],
        "keys": ["jobrelay", "keys", "list"],  # a tool (profile "tools"): `docker compose run --rm keys …`
    }
    assert {"kafka", "schema-registry", "jaeger", "postgres"} <= set(compose()["services"])


@pytest.mark.parametrize("name", sorted(jobrelay_services()))
def test_every_compose_command_exists_in_the_cli(name: str) -> None:
    assert resolves(jobrelay_services()[name]["command"][1:])


@pytest.mark.parametrize("name", sorted(jobrelay_services()))
def test_every_jobrelay_variable_in_compose_is_a_setting(name: str) -> None:
    variables = {k for k in jobrelay_services()[name].get("environment", {}) if k.startswith(("JOBRELAY_", "KAFKA_"))}
    assert variables and variables <= known_variables(), variables - known_variables()


def test_unknown_commands_are_told_apart() -> None:
    assert not resolves(["intake", "no-such-command"]) and not resolves(["frobnicate"])


def test_the_local_stack_sets_only_real_settings(tmp_path: Path) -> None:
    defaults = Stack(env={}, run_dir=tmp_path)._defaults()
    assert set(defaults) <= known_variables()
    assert {s.port_env for s in Stack(env={}, run_dir=tmp_path).services} <= known_variables()


def test_the_dockerfile_copies_what_exists() -> None:
    sources = [
        line.split()[1]
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert sources and all((ROOT / source).exists() for source in sources), sources


def test_the_readme_settings_table_is_what_the_code_reads() -> None:
    from jobrelay.cli.settingsdoc import markdown

    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- settings:begin -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert table == markdown(), "run `jobrelay settings` and paste its output into the README"
