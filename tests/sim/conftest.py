"""The real daphne server fixtures of the agent tests, for the sim agent end to end."""

from tests.agent.conftest import daphne, daphne_env  # noqa: F401 - pytest fixtures
