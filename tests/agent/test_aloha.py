"""ALOHA on MuJoCo (gym-aloha's insertion) as a robot: its declaration, physics without rendering,
end-effector teleop, holds, a MuJoCo error as a fault, and the agent with it against the real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from robot_agent.control import ControlLoop, LoopSettings
from robot_agent.drivers import make_robot
from robot_agent.drivers.aloha import AlohaRobot
from robot_agent.modes import TeleopVelocity

ENV_ID = "gym_aloha/AlohaInsertion-v0"


@pytest.fixture(scope="module")
def aloha() -> Iterator[AlohaRobot]:
    robot = make_robot(f"gym:{ENV_ID}")
    assert isinstance(robot, AlohaRobot)
    yield robot
    robot.close()


def jog(arm: str, vx: float = 0.0, vy: float = 0.0, vz: float = 0.0, grip: str | None = None, seq: int = 1) -> TeleopVelocity:
    return TeleopVelocity("lease", seq, arm, vx, vy, vz, 0.0, grip, 0.0)  # type: ignore[arg-type]


def test_declares_gym_alohas_joints_limits_and_rate(aloha):
    from gym_aloha.constants import JOINTS

    # gym-aloha's own action layout, named by arm (left_arm_waist -> left.waist).
    assert [f.name for f in aloha.action_features] == [name.replace("_arm_", ".") for name in JOINTS]
    assert aloha.control_hz == 50.0 and aloha.action_dim == 14 and len(aloha.state_features) == 28
    shoulder = aloha.action_features[1]
    assert (shoulder.unit, shoulder.low, shoulder.high) == ("rad", -1.85005, 1.25664)  # the model's actuator ctrlrange
    assert (aloha.action_features[6].low, aloha.action_features[6].high) == (0.0, 1.0)
    assert aloha.cameras == ["top", "left_wrist", "right_wrist"] and set(aloha.camera_fps) == set(aloha.cameras)
    assert aloha.teleop is not None and (aloha.teleop.space, aloha.teleop.spin) == ("end_effector", "turn the wrist")


def test_a_seed_places_the_peg_and_socket_and_a_cycle_starts_at_reach(aloha):
    status = aloha.reset(7)
    first = aloha.data.qpos[16:].copy()
    aloha.reset(8)
    assert not np.allclose(aloha.data.qpos[16:], first)
    status = aloha.reset(7)
    assert np.allclose(aloha.data.qpos[16:], first)
    assert (status.phase, status.progress, status.done) == ("reach", 0.0, False)


def test_steps_never_render_and_hold_keeps_the_arms_still(aloha):
    aloha.reset(1)
    drawn = len(aloha.renderer.renderers)
    for _ in range(50):
        aloha.step(aloha.applied_action())
    assert len(aloha.renderer.renderers) == drawn  # physics only: gym-aloha's env.step would render 3 cameras
    for _ in range(25):
        aloha.hold()
    before = aloha.state()[:14]
    for _ in range(50):
        aloha.hold()
    assert np.max(np.abs(aloha.state()[:14] - before)) < 0.01  # latched targets: no sag tick by tick


def test_end_effector_jog_moves_the_commanded_gripper_only(aloha):
    aloha.reset(2)
    start = aloha.arm_poses()
    for seq in range(50):  # 1 s up at 0.1 m/s, then 1 s along +x at 0.05 m/s
        aloha.step(aloha.teleop_action(jog("right", vz=0.1, seq=seq)))
    up = aloha.arm_poses()
    for seq in range(50):
        aloha.step(aloha.teleop_action(jog("right", vx=0.05, seq=seq)))
    along = aloha.arm_poses()
    assert 70 < up["right"]["z_mm"] - start["right"]["z_mm"] < 110
    assert abs(up["right"]["x_mm"] - start["right"]["x_mm"]) < 10 and abs(up["right"]["y_mm"] - start["right"]["y_mm"]) < 10
    assert 35 < along["right"]["x_mm"] - up["right"]["x_mm"] < 60 and abs(along["right"]["z_mm"] - up["right"]["z_mm"]) < 10
    for axis in ("x_mm", "y_mm", "z_mm"):
        assert abs(along["left"][axis] - start["left"][axis]) < 5  # the other arm kept its place
    for seq in range(40):
        aloha.step(aloha.teleop_action(jog("right", grip="open", seq=seq)))
    assert aloha.arm_poses()["right"]["grip"] == 0.0  # ArmPose.grip: how closed (gym-aloha commands how open)


def test_cameras_render_what_the_physics_shows(aloha):
    aloha.reset(3)
    top = aloha.capture("top", (320, 240))
    assert top.shape == (240, 320, 3) and top.dtype == np.uint8
    red = (top[..., 0] > 150) & (top[..., 1] < 80) & (top[..., 2] < 80)
    blue = (top[..., 2] > 150) & (top[..., 0] < 80) & (top[..., 1] < 80)
    assert red.sum() > 20 and blue.sum() > 20  # the peg and the socket are on the table
    observation = aloha.observation()
    assert observation["state"].shape == (28,) and "ground_truth" not in observation
    assert observation["images"]["top"].shape == (120, 160, 3)  # drawn when read, from the observed state


def test_a_mujoco_error_raises_and_puts_the_simulation_back_at_rest(aloha):
    aloha.reset(4)
    before = aloha.physics.get_state().copy()
    aloha.data.qvel[0] = 1e30  # a diverging simulation
    with pytest.raises(RuntimeError, match="MuJoCo"):
        aloha.step(aloha.applied_action())
    restored = aloha.physics.get_state()
    assert np.allclose(restored[:30], before[:30]) and np.all(restored[30:58] == 0.0)  # positions as they were, at rest
    aloha.hold()  # and it goes on


def test_a_mujoco_error_in_the_control_loop_is_a_fault_and_a_hold(aloha, tmp_path):
    from foreman_learning.policies.base import PolicyOutput
    from robot_agent.chunking import ChunkExecutor, inline_submit
    from robot_agent.clock import MonotonicClock
    from robot_agent.modes import ModeController
    from robot_agent.safety import EstopLatch

    def stay(observation: Any, prefix: Any) -> PolicyOutput:  # a policy that keeps the arms where they are
        return PolicyOutput(np.tile(observation["state"][:14], (10, 1)), None)

    sent: list[Any] = []
    modes = ModeController(MonotonicClock(1.0), EstopLatch(tmp_path))
    loop = ControlLoop(aloha, modes, ChunkExecutor(stay, inline_submit, synchronous=True), MonotonicClock(1.0),
                       lambda message, reliable: sent.append(message), settings=LoopSettings(control_hz=50.0, takt_s=60.0))
    loop.tick()
    loop.tick()
    assert modes.mode == "autonomous" and loop.cycle is not None
    aloha.data.qvel[0] = 1e30  # the simulation diverges in the next period
    for _ in range(5):
        loop.tick()
    raised = [message for message in sent if message.type == "intervention_raised"]
    assert len(raised) == 1 and raised[0].trigger == "fault" and "MuJoCo" in raised[0].detail
    assert modes.mode == "hold" and loop.stats.faults == 1 and np.all(np.isfinite(aloha.state()))


@pytest.fixture
def server_settles(transactional_db: Any) -> Iterator[None]:
    """As in test_link_server.py: let daphne finish what the closed sockets caused before the flush."""
    from tests.conftest import wait_for_servers_to_settle

    yield
    wait_for_servers_to_settle()


@pytest.mark.django_db(transaction=True)
async def test_agent_with_aloha_declares_it_and_a_person_drives_it(fleet, users, daphne, tmp_path, cleanup, server_settles):
    """The agent on the ALOHA robot, against the real server: the declaration reaches the API, the
    robot holds with no policy and asks for a person at the takt, and WebSocket teleop moves its arm."""
    from channels.db import database_sync_to_async

    from tests.agent.station import make_agent, stop_agent
    from tests.conftest import fleet_socket
    from tests.servers import eventually

    robot = make_robot(f"gym:{ENV_ID}")
    agent = make_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1", robot, None, takt_warning_fraction=0.05)
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.link.is_connected, timeout=30, what="welcome")

        from webapp.fleet.models import Robot as RobotRow

        features = (await database_sync_to_async(RobotRow.objects.get)(name="r1")).features  # stored from the hello
        assert features["control_hz"] == 50.0 and features["action"][0]["name"] == "left.waist" and len(features["state"]) == 28

        operator, _ = await fleet_socket(users["operator"])
        cleanup.append(operator)
        await operator.send({"type": "claim", "id": "c1", "robot": "r1", "mode": "teleop"})
        result = await operator.recv_until(lambda m: m.get("ref") == "c1")
        lease_id = result["data"]["lease"]["id"]
        await eventually(lambda: agent.modes.mode == "teleop", what="teleop under the lease")
        z_before = robot.arm_poses()["left"]["z_mm"]
        for seq in range(1, 30):
            await operator.send({"type": "teleop", "robot": "r1", "lease_id": lease_id, "seq": seq, "arm": "left", "vz": 0.1})
            await asyncio.sleep(0.03)
        await eventually(lambda: robot.arm_poses()["left"]["z_mm"] > z_before + 20, what="the left gripper rises")
        await operator.send({"type": "release", "id": "rel", "robot": "r1", "lease_id": lease_id})
        await eventually(lambda: agent.modes.lease is None, what="hand-back")
    finally:
        await stop_agent(agent, task)


def test_the_scripted_expert_inserts_the_peg_on_most_held_out_seeds(aloha):
    """The ALOHA robot's own expert through the agent's chunk execution (robot_agent.evaluate): 8 of
    seeds 100-109 here, 72.5% of 100-139 (docs/robots.md)."""
    from robot_agent.evaluate import run_episode, summarize

    expert = aloha.expert_policy()
    aloha.observe_ground_truth(True)
    try:
        episodes = [run_episode(aloha, expert, seed, max_seconds=12.0) for seed in range(100, 110)]
    finally:
        aloha.observe_ground_truth(False)
    summary = summarize(episodes)
    assert summary["success_rate"] >= 0.6, episodes
    assert all(5.0 < episode.cycle_s < 12.0 for episode in episodes if episode.success)
    assert {episode.progress for episode in episodes if episode.success} == {1.0}
