"""`jobrelay settings`: every setting, its environment variable and default, from the code itself.

The README's settings table is this command's Markdown output (a test keeps the two equal).
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import AliasChoices
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from jobrelay.config.settings import (
    AuthSettings,
    CorsSettings,
    HttpSettings,
    KafkaSettings,
    ObservabilitySettings,
    TopicSettings,
)
from jobrelay.intake.settings import IntakeSettings
from jobrelay.notifier.settings import NotifierSettings
from jobrelay.processor.settings import ProcessorSettings
from jobrelay.projector.settings import ProjectorSettings

__all__ = ["SECTIONS", "markdown", "rows"]

SECTIONS: list[tuple[str, type[BaseSettings]]] = [
    ("Kafka (every service)", KafkaSettings),
    ("Topics (every service)", TopicSettings),
    ("Logs and traces (every service)", ObservabilitySettings),
    ("Authentication (intake, status projector, notifier)", AuthSettings),
    ("HTTP limits (every service)", HttpSettings),
    ("Browser access (intake, status projector)", CorsSettings),
    ("Intake", IntakeSettings),
    ("Processor", ProcessorSettings),
    ("Status projector", ProjectorSettings),
    ("Notifier", NotifierSettings),
]


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is PydanticUndefined or value is None or value in ((), [], ""):
        return ""
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value.value if hasattr(value, "value") else value)


def rows(cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) for each field of `cls`."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    out = []
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        env = str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"{prefix}{name}".upper()
        out.append((env, _default(field), (field.description or "").replace("|", "\\|")))
    return out


def markdown() -> str:
    """The settings as Markdown tables, one per section."""
    parts = []
    for title, cls in SECTIONS:
        lines = [f"**{title}**", "", "| variable | default | meaning |", "|---|---|---|"]
        lines += [
            f"| `{env}` | {f'`{default}`' if default else ''} | {meaning} |" for env, default, meaning in rows(cls)
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def settings() -> None:
    """Print every setting: environment variable, default and meaning (Markdown)."""
    typer.echo(markdown(), nl=False)
