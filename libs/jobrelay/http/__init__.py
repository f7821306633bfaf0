"""HTTP pieces every service shares: health, metrics, problem details, the uvicorn runner."""

from jobrelay.http.health import Readiness, health_router
from jobrelay.http.problems import Problem, install_problem_handlers, problem_response
from jobrelay.http.runner import run_service, serve

__all__ = [
    "Problem",
    "Readiness",
    "health_router",
    "install_problem_handlers",
    "problem_response",
    "run_service",
    "serve",
]
