"""The registry: every scenario `python -m bench` knows, in the order the table shows them.

To add one (e.g. "jobrelay-http"): write `bench/scenarios/<module>.py` with a class that has
`name`, `missing()` and `open(ctx)` (see `bench.scenario.Scenario`) and a module-level
`SCENARIO` instance, then add a line to `_MODULES` below. Modules are imported only when their
scenario is selected, so a scenario's heavy or optional imports (Celery) cost nothing otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from bench.scenario import Scenario

__all__ = ["NAMES", "load"]

# name -> module defining SCENARIO; jobrelay's own between the limit and the peer.
_MODULES: dict[str, str] = {
    "limit": "bench.scenarios.limit",
    "jobrelay-http": "bench.scenarios.jobrelay_http",
    "jobrelay-publisher": "bench.scenarios.jobrelay_publisher",
    "intake-only": "bench.scenarios.intake_only",
    "intake-auth": "bench.scenarios.intake_auth",
    "projector-rebuild": "bench.scenarios.projector_rebuild",
    "processor-memory": "bench.scenarios.processor_memory",
    "cancel": "bench.scenarios.cancel",
    "ws-fanout": "bench.scenarios.ws_fanout",
    "intake-wait": "bench.scenarios.intake_wait",
    "peer": "bench.scenarios.peer",
    "client-cpu": "bench.scenarios.client_cpu",
}
NAMES: tuple[str, ...] = tuple(_MODULES)


def load(names: Sequence[str] | None = None) -> list[Scenario]:
    """The scenarios called `names` (all when None), in registry order."""
    wanted = NAMES if not names else tuple(names)
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        raise KeyError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    scenarios: list[Scenario] = []
    for name in NAMES:
        if name in wanted:
            scenario: Scenario = importlib.import_module(_MODULES[name]).SCENARIO
            if scenario.name != name:
                raise ValueError(f"{_MODULES[name]}.SCENARIO is named {scenario.name!r}, registered as {name!r}")
            scenarios.append(scenario)
    return scenarios
