"""The real daphne server fixtures of the agent tests, for rollouts to real agents."""

from tests.agent.conftest import daphne, daphne_env  # noqa: F401 - pytest fixtures
