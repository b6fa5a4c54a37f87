"""Robot drivers, chosen by `--robot KIND[:ARGUMENT]` (docs/robots.md says how to write one).

- `sim`: the simulated nut station (robot_agent/sim_robot.py; `--sim` is short for it);
- `gym:ENV_ID`: any Gymnasium environment (robot_agent/drivers/gym_env.py), with a driver of its own
  where the generic one would not do: gym-aloha's ALOHA tasks (robot_agent/drivers/aloha.py).

A driver is a function (argument, control_hz or None for the robot's native rate) -> Robot.
"""

from __future__ import annotations

from collections.abc import Callable

from robot_agent.robot import Robot

DriverFactory = Callable[[str, "float | None"], Robot]


class DriverError(Exception):
    """The robot cannot be made (unknown driver, bad argument, missing package): a one-line startup error."""


def _sim(argument: str, control_hz: float | None) -> Robot:
    if argument:
        raise DriverError(f"the sim driver takes no argument (got sim:{argument})")
    from robot_agent.sim_robot import SimRobot

    return SimRobot() if control_hz is None else SimRobot(control_hz=control_hz)


def _gym(argument: str, control_hz: float | None) -> Robot:
    if not argument:
        raise DriverError("the gym driver needs an environment id: --robot gym:ENV_ID (e.g. gym:gym_aloha/AlohaInsertion-v0)")
    from robot_agent.drivers.aloha import is_aloha_env

    if is_aloha_env(argument):
        from robot_agent.drivers.aloha import AlohaRobot

        return AlohaRobot(argument, control_hz)
    from gymnasium.error import Error as GymnasiumError

    from robot_agent.drivers.gym_env import GymRobot

    try:
        return GymRobot(argument, control_hz)
    except GymnasiumError as error:  # not registered, a bad version, a missing dependency of the env
        raise DriverError(f"Gymnasium environment {argument!r}: {error}") from None


DRIVERS: dict[str, DriverFactory] = {"sim": _sim, "gym": _gym}


def make_robot(spec: str, control_hz: float | None = None) -> Robot:
    """The robot `spec` names (`sim`, `gym:ENV_ID`), at `control_hz` or its native rate."""
    kind, _, argument = spec.partition(":")
    factory = DRIVERS.get(kind)
    if factory is None:
        raise DriverError(f"unknown robot driver {kind!r}: one of {', '.join(f'{name}' for name in DRIVERS)} (--robot sim, --robot gym:ENV_ID)")
    try:
        return factory(argument, control_hz)
    except DriverError:
        raise
    except ImportError as error:
        raise DriverError(f"the {kind} driver cannot load {error.name or error}: install the repo's requirements (make venv)") from None
    except ValueError as error:
        raise DriverError(str(error)) from None
