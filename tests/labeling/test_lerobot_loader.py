"""A Foreman export loaded by LeRobot 0.4.4 itself (`LeRobotDataset`, torchcodec decoding the videos)
in its own environment (scripts/lerobot_env.sh): every frame, the video frame counts against the
episodes', Foreman's per-row columns, and a DataLoader over action chunks with delta_timestamps."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from robot_agent.__main__ import rollout_loader
from robot_agent.config import AgentConfig
from robot_agent.lerobot_policy import LeRobotPolicy
from tests.labeling.recordings import record_episode
from tests.labeling.test_processing import post
from tests.sim.recorded import record_sim_cycle
from webapp.fleet.models import AuditEvent, PolicyVersion
from webapp.labeling.services.exports import export_create, export_run
from webapp.labeling.services.labels import label_review, label_submit
from webapp.labeling.services.processing import upload_process

pytestmark = pytest.mark.django_db
LOADER = Path(__file__).with_name("lerobot_load.py")
CHUNK = 10  # one second of actions at the export's 10 fps


def exported(fleet: Any, users: dict[str, Any], settings: Any, spools: list[tuple[Path, str]], into: Path) -> Path:
    """The spooled episodes uploaded, labeled (with their failure modes) and confirmed, exported as a
    LeRobotDataset and unzipped into `into`."""
    episodes = []
    for spool, failure_mode in spools:
        upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
        assert upload.state == "ready", upload.reason
        episodes.append(str(upload.episode_id))
        label = label_submit(episode_id=episodes[-1], user=users["labeler"], failure_mode=failure_mode,
                             failure_t=3.0 if failure_mode else None, good_demo=True)
        label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=episodes).id))
    assert export.state == "done", export.message
    with zipfile.ZipFile(settings.MEDIA_ROOT / export.file) as archive:
        archive.extractall(into)
    return into


def test_lerobots_own_loader_reads_every_frame_of_an_export(fleet: Any, users: dict[str, Any], settings: Any, tmp_path: Path,
                                                          lerobot_python: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    # The second as a real robot records it: no sim seed (nothing to replay); it exports like any other.
    spools = [(record_episode(tmp_path / f"agent{index}", seconds=seconds, takeover_at=takeover, lease_id=str(uuid.uuid4()),
                              started_unix=1_795_600_000.0 + 100 * index, seed=seed), "cross_threaded")
              for index, (seconds, takeover, seed) in enumerate(((6.0, 4.0, 7), (9.0, 6.0, None)))]
    root = exported(fleet, users, settings, spools, tmp_path / "dataset")

    result = subprocess.run([str(lerobot_python), str(LOADER), str(root), str(CHUNK)], capture_output=True, text=True, timeout=600,
                            env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-4000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])

    assert read["len"] == read["total_frames"] == 60 + 90
    assert read["frames_per_episode"] == read["lengths"] == {"0": 60, "1": 90}
    for episode, length in read["lengths"].items():  # each camera's file holds exactly its episode's frames
        assert read["video_frames"][episode] == {camera: length for camera in read["cameras"]}
    assert read["cameras"] == ["observation.images.head", "observation.images.wrist_left"]
    assert read["image_shapes"] == {camera: [3, 240, 320] for camera in read["cameras"]}  # channels first, as LeRobot's policies take
    low, high = read["value_range"]
    assert 0.0 <= low < high <= 1.0
    # Foreman's columns come through the loader as written.
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    for name in ("control_source", "lease_index"):
        assert read["columns"][name] == [float(v) for v in data[name]]
    assert read["columns"]["sample_weight"] == pytest.approx(data["sample_weight"])
    assert read["batch_action"] == [8, CHUNK, 10] and read["batch_pad"] == [8, CHUNK]
    assert read["task"] == "install self-tapping nuts, both sides"

    # The same episodes at a rate the labeler picked (every 2nd recorded frame): LeRobot reads it as well.
    slower = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", fps=5).id))
    assert slower.state == "done", slower.message
    with zipfile.ZipFile(settings.MEDIA_ROOT / slower.file) as archive:
        archive.extractall(tmp_path / "five")
    result = subprocess.run([str(lerobot_python), str(LOADER), str(tmp_path / "five"), "5"], capture_output=True, text=True, timeout=600,
                            env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-4000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read["len"] == 30 + 45 and read["frames_per_episode"] == read["lengths"] == {"0": 30, "1": 45}
    assert read["video_frames"] == {episode: {camera: length for camera in read["cameras"]} for episode, length in read["lengths"].items()}


# ACT shrunk for CI (its defaults, 52 M parameters on three cameras, take ~3 s a step on 2 cores;
# ../shared/lerobot-v3-format.md): a small transformer, no VAE, one-second chunks, a learning rate
# that shows learning in a minute or two (ACT's 1e-5 is for days). Its ResNet-18 on the 320×240
# camera still costs ~2 s a step here.
ACT_CI = ["--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null",
          "--policy.dim_model=64", "--policy.n_heads=2", "--policy.dim_feedforward=128", "--policy.n_encoder_layers=1",
          "--policy.n_decoder_layers=1", "--policy.use_vae=false", "--policy.chunk_size=10", "--policy.n_action_steps=10",
          "--policy.optimizer_lr=1e-3", "--policy.optimizer_lr_backbone=1e-3",
          "--wandb.enable=false", "--num_workers=0", "--batch_size=8", "--log_freq=5", "--eval_freq=0", "--seed=1000"]
ACT_STEPS = 60
LOSS = re.compile(r"\bloss:(\d+(?:\.\d+)?)")


@pytest.mark.timeout(600)  # two sim cycles recorded, about two minutes of training, the checkpoint run
def test_lerobot_train_fits_act_on_an_export_of_simulated_cycles(fleet: Any, users: dict[str, Any], settings: Any, tmp_path: Path,
                                                                lerobot_python: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Each cycle: the shipped policy, a protective hold, a person (the sim's expert) finishing it.
    cycles = [record_sim_cycle(tmp_path / f"agent{i}", seed=1003 + i, hold_at=200 + 150 * i, cameras=("head",), record_fps=10.0) for i in range(2)]
    root = exported(fleet, users, settings, [(cycle.spool, cycle.station.outcome.failure_mode or "") for cycle in cycles], tmp_path / "dataset")

    output = tmp_path / "act"
    result = subprocess.run(
        [str(lerobot_python), "-m", "lerobot.scripts.lerobot_train", "--dataset.repo_id=foreman/export", f"--dataset.root={root}",
         f"--output_dir={output}", f"--steps={ACT_STEPS}", f"--save_freq={ACT_STEPS}", *ACT_CI],
        capture_output=True, text=True, timeout=900,
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin",
             "WANDB_MODE": "disabled", "HOME": str(tmp_path)})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    losses = [float(v) for v in LOSS.findall(result.stdout + result.stderr)]
    assert len(losses) == ACT_STEPS // 5, (result.stdout + result.stderr)[-3000:]  # the mean of each 5 steps
    assert sum(losses[-3:]) / 3 < 0.85 * losses[0], losses  # it learns: the loss falls (here 0.89 -> 0.66)
    checkpoint = output / "checkpoints" / "last" / "pretrained_model"
    assert (checkpoint / "model.safetensors").stat().st_size > 0 and json.loads((checkpoint / "config.json").read_text())["type"] == "act"

    # Back to the robot: the agent runs the checkpoint (--policy lerobot:PATH) on the simulated station,
    # LeRobot's own code loading it in LeRobot's environment.
    evaluated = subprocess.run([sys.executable, "-m", "robot_agent.evaluate", "--robot", "sim", "--policy", f"lerobot:{checkpoint}",
                                "--episodes", "1", "--seed", "1000", "--max-seconds", "3"], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "FOREMAN_LEROBOT_HOME": str(lerobot_python.parents[2])})
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert report["policy"] == "lerobot-act:act@000060" and report["episodes"] == 1
    # It drove the station, and the station judged it: 60 steps teach little (it closes its gripper at once: a missed pick).
    assert 0.0 < report["details"][0]["cycle_s"] <= 3.0 and report["details"][0]["detail"]

    # A policy process that dies is started again at the next inference; the robot's state and its
    # trained camera go in, a whole chunk of the robot's actions comes back.
    from robot_agent.sim_robot import SimRobot

    robot = SimRobot()
    robot.reset(1000)
    policy = LeRobotPolicy(checkpoint, robot, lerobot_python)
    try:
        assert policy.images == {"observation.images.head": ("head", 320, 240)} and policy.chunk == 10
        first = policy.infer(robot.observation())
        assert first.actions.shape == (10, 10) and np.all(np.isfinite(first.actions)) and first.confidence is None
        policy.bridge.process.kill()
        policy.bridge.process.wait(timeout=10)
        again = policy.infer(robot.observation())
        assert np.allclose(again.actions, first.actions, atol=1e-5)  # the same observation, the same chunk
    finally:
        policy.close()
    # Registered as a policy version (zipped, hashed, audited), then loaded as a robot loads a rollout.
    out = io.StringIO()
    call_command("register_policy", "act-ci", str(checkpoint), "--notes", "lerobot-train ACT, 60 steps", stdout=out)
    version = PolicyVersion.objects.get(name="act-ci")
    stored = settings.MEDIA_ROOT / version.checkpoint
    assert stored.name == "act-ci.lerobot.zip" and hashlib.sha256(stored.read_bytes()).hexdigest() == version.sha256
    assert AuditEvent.objects.filter(action="policy_registered", detail__policy="act-ci").exists()
    call_command("register_policy", "act-ci-again", str(checkpoint), stdout=io.StringIO())  # the same bytes for the same checkpoint
    assert PolicyVersion.objects.get(name="act-ci-again").sha256 == version.sha256
    with pytest.raises(CommandError, match="not a LeRobot checkpoint"):
        call_command("register_policy", "not-one", str(tmp_path / "dataset"), stdout=io.StringIO())
    downloaded = tmp_path / "agent-state" / "policies" / "act-ci.ckpt"
    downloaded.parent.mkdir(parents=True)
    downloaded.write_bytes(stored.read_bytes())
    rolled_out = rollout_loader(AgentConfig(robot="sim", lerobot_python=lerobot_python), robot)(str(downloaded))
    assert isinstance(rolled_out, LeRobotPolicy)
    try:
        assert rolled_out.infer(robot.observation()).actions.shape == (10, 10)
    finally:
        rolled_out.close()

    from robot_agent.drivers.aloha import AlohaRobot

    aloha = AlohaRobot()
    try:
        with pytest.raises(ValueError, match="acts on 10 numbers, robot .* on 14"):  # a checkpoint for another robot: refused at start
            LeRobotPolicy(checkpoint, aloha, lerobot_python)
    finally:
        aloha.close()
