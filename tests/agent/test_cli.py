"""The command line: --help, settings precedence, one-line startup errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robot_agent.config import ConfigError, http_base_url, load_config, robot_websocket_url

ROOT = Path(__file__).resolve().parents[2]


def run_agent(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "robot_agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_help_explains_every_setting():
    result = run_agent("--help", timeout=30)
    assert result.returncode == 0
    for flag in ("--server", "--token", "--sim", "--name", "--policy", "--camera", "--time-scale", "--ice-loopback",
                 "--state-dir", "--config", "--offline-policy", "--sync-inference", "--stamp-frames", "FOREMAN_SERVER"):
        assert flag in result.stdout, flag


def test_unknown_camera_source_is_one_line_exit_2(tmp_path):
    result = run_agent("--server", "http://127.0.0.1:9", "--token", "frt_x", "--sim", "--camera", "head=/nonexistent/cam0",
                       "--state-dir", str(tmp_path), timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown camera source" in result.stderr and "head" in result.stderr


def test_missing_policy_file_is_one_line_exit_2(tmp_path):
    result = run_agent("--server", "http://127.0.0.1:9", "--token", "frt_x", "--sim", "--policy", str(tmp_path / "nope.pt"),
                       "--state-dir", str(tmp_path), timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "policy file not found" in result.stderr


def test_missing_server_is_one_line_exit_2():
    result = run_agent("--token", "frt_x", timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stderr.strip() == "robot_agent: no server URL: pass --server or set FOREMAN_SERVER"


def test_precedence_defaults_toml_env_cli(tmp_path):
    toml = tmp_path / "agent.toml"
    toml.write_text('server = "http://toml:1"\ntoken = "frt_toml"\nname = "from-toml"\ntime_scale = 3.0\n'
                    'cameras = { head = "/dev/video0" }\noffline_policy = "hold"\n')
    config = load_config(["--config", str(toml), "--name", "from-cli"],
                         environ={"FOREMAN_TOKEN": "frt_env", "FOREMAN_ICE_LOOPBACK": "1"})
    assert config.server == "http://toml:1" and config.token == "frt_env" and config.name == "from-cli"
    assert config.time_scale == 3.0 and config.ice_loopback is True and config.offline_policy == "hold"
    assert config.camera == {"head": "/dev/video0"} and config.sync_inference is False
    assert config.resolved_state_dir == Path("var/agent/from-cli")
    config = load_config(["--server", "http://a:1", "--token", "t", "--camera", "a=x.mp4", "--camera", "b=rtsp://h/s"], environ={})
    assert config.camera == {"a": "x.mp4", "b": "rtsp://h/s"}


def test_demo_command_line_is_accepted():
    config = load_config(["--server", "http://127.0.0.1:8000", "--token", "frt_abc", "--sim", "--time-scale", "1.0",
                          "--name", "r1", "--ice-loopback"], environ={})
    assert config.sim and config.ice_loopback and config.name == "r1" and config.time_scale == 1.0
    assert config.websocket_url == "ws://127.0.0.1:8000/ws/robot/"


@pytest.mark.parametrize(("server", "ws", "http"), [
    ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/robot/", "http://127.0.0.1:8000"),
    ("https://fleet.example/", "wss://fleet.example/ws/robot/", "https://fleet.example"),
    ("ws://127.0.0.1:8000/ws/robot/", "ws://127.0.0.1:8000/ws/robot/", "http://127.0.0.1:8000"),
])
def test_server_url_derivation(server, ws, http):
    assert robot_websocket_url(server) == ws and http_base_url(server) == http


@pytest.mark.parametrize("argv", [
    ["--server", "ftp://x", "--token", "t"],
    ["--server", "http://x", "--token", "t", "--offline-policy", "maybe"],
    ["--server", "http://x", "--token", "t", "--time-scale", "0"],
    ["--server", "http://x", "--token", "t", "--time-scale", "fast"],
    ["--server", "http://x", "--token", "t", "--camera", "nocolon"],
    ["--server", "http://x", "--token", "t", "--video-codecs", "vp9"],
    ["--server", "http://x", "--token", "t", "--max-viewers", "0"],
    ["--server", "http://x", "--token", "t", "--video-bits-per-pixel", "0"],
    ["--server", "http://x", "--token", "t", "--video-bits-per-pixel", "3"],
])
def test_bad_settings_raise_config_error(argv):
    with pytest.raises(ConfigError):
        load_config(argv, environ={})


def test_video_settings_from_the_environment():
    config = load_config(["--server", "http://x", "--token", "t"], environ={"FOREMAN_VIDEO_CODECS": "h264, vp8", "FOREMAN_MAX_VIEWERS": "3",
                                                                               "FOREMAN_VIDEO_BITS_PER_PIXEL": "0.1"})
    assert config.video_codecs == ("h264", "vp8") and config.max_viewers == 3 and config.video_bits_per_pixel == 0.1
    assert load_config(["--server", "http://x", "--token", "t"], environ={}).video_bits_per_pixel == 0.06
