"""Robot drivers, chosen by `--robot KIND[:ARGUMENT]` (docs/robots.md says how to write one).

- `sim`: the simulated nut station (robot_agent/sim_robot.py; `--sim` is short for it);
- `gym:ENV_ID`: any Gymnasium environment (robot_agent/drivers/gym_env.py), with a driver of its own
  where the generic one would not do: gym-aloha's ALOHA tasks (robot_agent/drivers/aloha.py);
- `lerobot:TYPE`: a robot of LeRobot's (so101_follower, koch_follower, ...), driven by LeRobot's own
  classes in LeRobot's own environment (robot_agent/drivers/lerobot_driver.py).

A driver is a function (DriverRequest) -> Robot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from robot_agent.robot import Robot


@dataclass(frozen=True)
class DriverRequest:
    argument: str  # what follows `KIND:` in --robot
    control_hz: float | None = None  # None: the robot's native rate
    options: dict[str, str] = field(default_factory=dict)  # --robot.KEY=VALUE
    lerobot_python: Path | None = None  # LeRobot's environment (lerobot: only)


DriverFactory = Callable[[DriverRequest], Robot]


def _no_options(kind: str, request: DriverRequest) -> None:
    if request.options:
        raise DriverError(f"the {kind} driver takes no --robot.KEY options (got {', '.join(sorted(request.options))})")


class DriverError(Exception):
    """The robot cannot be made (unknown driver, bad argument, missing package): a one-line startup error."""


def _sim(request: DriverRequest) -> Robot:
    if request.argument:
        raise DriverError(f"the sim driver takes no argument (got sim:{request.argument})")
    _no_options("sim", request)
    from robot_agent.sim_robot import SimRobot

    return SimRobot() if request.control_hz is None else SimRobot(control_hz=request.control_hz)


def _gym(request: DriverRequest) -> Robot:
    argument, control_hz = request.argument, request.control_hz
    _no_options("gym", request)
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


def _lerobot(request: DriverRequest) -> Robot:
    if not request.argument:
        raise DriverError("the lerobot driver needs LeRobot's robot type: --robot lerobot:TYPE (e.g. lerobot:so101_follower "
                          "--robot.port=/dev/ttyACM0 --robot.id=my_arm)")
    if "type" in request.options:
        raise DriverError("the robot type goes in --robot lerobot:TYPE, not --robot.type")
    from robot_agent.drivers.lerobot_driver import LeRobotRobot

    return LeRobotRobot(request.argument, request.options, request.control_hz, request.lerobot_python)


DRIVERS: dict[str, DriverFactory] = {"sim": _sim, "gym": _gym, "lerobot": _lerobot}


def make_robot(spec: str, control_hz: float | None = None, options: dict[str, str] | None = None,
               lerobot_python: Path | None = None) -> Robot:
    """The robot `spec` names (`sim`, `gym:ENV_ID`, `lerobot:TYPE`), at `control_hz` or its native rate."""
    kind, _, argument = spec.partition(":")
    factory = DRIVERS.get(kind)
    if factory is None:
        raise DriverError(f"unknown robot driver {kind!r}: one of {', '.join(f'{name}' for name in DRIVERS)} "
                          "(--robot sim, --robot gym:ENV_ID, --robot lerobot:TYPE)")
    try:
        return factory(DriverRequest(argument, control_hz, dict(options or {}), lerobot_python))
    except DriverError:
        raise
    except ImportError as error:
        raise DriverError(f"the {kind} driver cannot load {error.name or error}: install the repo's requirements (make venv)") from None
    except ValueError as error:
        raise DriverError(str(error)) from None
