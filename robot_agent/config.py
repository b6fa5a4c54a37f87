"""Agent settings from (lowest to highest precedence) defaults, a TOML file, FOREMAN_* environment
variables and command-line flags. One table below defines each setting once for all three."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class ConfigError(Exception):
    """A setting is missing or invalid: the agent prints one line and exits 2."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"not a boolean: {value!r}")


VIDEO_CODECS = {"vp8": "video/VP8", "h264": "video/H264"}


def _codecs(value: Any) -> tuple[str, ...]:
    """Video codecs, most preferred first: a comma-separated string or a list of vp8 / h264."""
    items = value.split(",") if isinstance(value, str) else list(value)
    codecs = tuple(str(item).strip().lower() for item in items if str(item).strip())
    unknown = [codec for codec in codecs if codec not in VIDEO_CODECS]
    if unknown or not codecs:
        raise ConfigError(f"video codecs must be some of {', '.join(VIDEO_CODECS)}, not {value!r}")
    return codecs


def _cameras(value: Any) -> dict[str, str]:
    """NAME=SOURCE pairs: a list (CLI, TOML list), a comma-separated string (env) or a TOML table."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    items = value.split(",") if isinstance(value, str) else list(value)
    cameras: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ConfigError(f"camera must be NAME=SOURCE, got {item!r}")
        cameras[name] = source
    return cameras


def _robot_options(value: Any) -> dict[str, str]:
    """KEY=VALUE pairs (the command line's --robot.KEY=VALUE) or a TOML table."""
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, str) else _toml_value(v) for k, v in value.items()}
    options: dict[str, str] = {}
    for item in value.split(",") if isinstance(value, str) else list(value):
        key, sep, option = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"robot option must be --robot.KEY=VALUE, got {item!r}")
        options[key.strip()] = option
    return options


def _toml_value(value: Any) -> str:
    """A TOML value as LeRobot's command line spells it (draccus parses YAML-like text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def split_robot_options(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the agent's own arguments, the driver's KEY=VALUE options): `--robot.port=/dev/ttyACM0` or
    `--robot.port /dev/ttyACM0` go to the driver, as LeRobot's commands spell them."""
    own: list[str] = []
    options: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item.startswith("--robot.") and len(item) > len("--robot."):
            key, sep, value = item[len("--robot."):].partition("=")
            if not sep:
                if index + 1 >= len(items):
                    raise ConfigError(f"{item} needs a value")
                index += 1
                value = items[index]
            options.append(f"{key}={value}")
        else:
            own.append(item)
        index += 1
    return own, options


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any], Any]
    help: str
    flag_only: bool = False  # store_true on the command line


SETTINGS: tuple[Setting, ...] = (
    Setting("server", str, "server URL, http(s)://host:port (the agent connects to ws(s)://host:port/ws/robot/)"),
    Setting("token", str, "robot token (frt_...), from `manage.py robot_token NAME`"),
    Setting("name", str, "robot name, used for the state directory and logs (default: robot)"),
    Setting("robot", str, "robot driver: sim (the simulated nut station), gym:ENV_ID (a Gymnasium environment, e.g. "
            "gym:gym_aloha/AlohaInsertion-v0), lerobot:TYPE (a LeRobot robot, e.g. lerobot:so101_follower); docs/robots.md"),
    Setting("robot_options", _robot_options, "the robot driver's options: --robot.KEY=VALUE on the command line, as LeRobot's own "
            "commands take them (--robot.port=/dev/ttyACM0 --robot.id=my_arm); a [robot_options] table in TOML"),
    Setting("lerobot_python", Path, "the Python of LeRobot's own environment, for --robot lerobot:TYPE and --policy lerobot:PATH (default: the one "
            "scripts/lerobot_env.sh builds)"),
    Setting("sim", _bool, "drive the simulated nut station (short for --robot sim)", flag_only=True),
    Setting("policy", str, "policy: a checkpoint PATH, 'expert' (the sim's scripted expert), xr0://HOST:PORT (XR0 deploy server) "
            "ws(s)://HOST:PORT (openpi server) or lerobot:PATH (a LeRobot checkpoint directory, e.g. lerobot-train's "
            "checkpoints/last/pretrained_model); default with --sim: the shipped trained policy (foreman_learning/weights/bc-sim-v2.pt)"),
    Setting("camera", _cameras, "camera NAME=SOURCE (V4L2 device, video file or rtsp:// URL); repeatable; replaces the sim's rendered camera of that name"),
    Setting("time_scale", float, "sim time runs this many times faster than wall time (default 1.0)"),
    Setting("ice_loopback", _bool, "offer and accept only 127.0.0.1 ICE candidates, no STUN/TURN (tests, benchmarks, demo)", flag_only=True),
    Setting("state_dir", Path, "where the e-stop latch and the episode spool live (default var/agent/NAME)"),
    Setting("offline_policy", str, "when the server is unreachable: finish the current cycle then hold (finish, default) or hold at once (hold)"),
    Setting("sync_inference", _bool, "run inference synchronously in the control loop instead of asynchronous chunk execution", flag_only=True),
    Setting("control_hz", float, "control loop rate in robot time (default: the robot's own, 30 Hz for the nut station)"),
    Setting("refill_below", int, "start the next inference when fewer than this many actions remain (default 10)"),
    Setting("prefix_length", int, "unexecuted actions passed to the policy as a prefix (default 5)"),
    Setting("stamp_frames", _bool, "stamp each frame's capture time as a bar code in its top rows (benchmarks)", flag_only=True),
    Setting("video_fps", float, "target frame rate of live video (default 30)"),
    Setting("record_fps", float, "recorded video frames per camera per wall second (default: the control rate, so every "
            "step has its frames, as LeRobot records; a sped-up sim: 10)"),
    Setting("video_codecs", _codecs, "live-video codecs offered, most preferred first (default vp8,h264: VP8 costs the robot "
            "a fraction of H.264's encode here, bench video)"),
    Setting("video_bits_per_pixel", float, "live-video bitrate budget per stream, in bits per pixel of each frame (default 0.06: "
            "640×480 at 30 fps is 553 kbit/s, a 320-px tile at 15 fps 69 kbit/s); the receiver's estimate lowers it"),
    Setting("max_viewers", int, "live-video viewers served at once, each its own encode and upload (default 8); more are told the video is full"),
    Setting("warning_confidence", float, "policy confidence below this raises a warning (default 0.7)"),
    Setting("intervention_confidence", float, "policy confidence below this holds and asks for a person (default 0.5)"),
    Setting("takt_warning_fraction", float, "raise a takt_overrun intervention when this fraction of the takt is used "
            "and the cycle is not done (default 0.95)"),
    Setting("max_speed", float, "teleop end-effector speed limit in m/s (default 0.25)"),
    Setting("max_spin", float, "teleop nut-driver speed limit in rev/s (default 5)"),
    Setting("language", str, "task instruction sent to language-conditioned policies"),
    Setting("seed", int, "seed of the first cycle (default 1000; cycle i uses seed + i)"),
    Setting("max_cycles", int, "stop after this many cycles (default: run forever)"),
    Setting("log_level", str, "logging level (default INFO)"),
    Setting("sim_supervisor_token", str, "sim only: a user API token (fut_...) for the scripted supervisor, the sim's expert acting as a remote "
            "teleoperator over /ws/fleet/ (the learning round uses it)"),
    Setting("sim_supervisor_mode", str, "what the scripted supervisor does when the robot asks for help: drive (take over and install the nut, "
            "default) or resume (acknowledge and let the policy go on: the soak bench)"),
)


@dataclass
class AgentConfig:
    server: str = ""
    token: str = ""
    name: str = "robot"
    robot: str | None = None
    robot_options: dict[str, str] = field(default_factory=dict)
    lerobot_python: Path | None = None
    sim: bool = False
    policy: str | None = None
    camera: dict[str, str] = field(default_factory=dict)
    time_scale: float = 1.0
    ice_loopback: bool = False
    state_dir: Path | None = None
    offline_policy: str = "finish"
    sync_inference: bool = False
    control_hz: float | None = None  # None: the robot's native rate
    refill_below: int = 10
    prefix_length: int = 5
    stamp_frames: bool = False
    video_fps: float = 30.0
    record_fps: float | None = None  # None: the control rate (a sped-up sim: SPED_UP_SIM_RECORD_FPS)
    video_codecs: tuple[str, ...] = ("vp8", "h264")
    video_bits_per_pixel: float = 0.06
    max_viewers: int = 8
    warning_confidence: float = 0.7
    intervention_confidence: float = 0.5
    takt_warning_fraction: float = 0.95
    max_speed: float = 0.25
    max_spin: float = 5.0
    language: str = "install the self-tapping nuts"
    seed: int = 1000
    max_cycles: int | None = None
    log_level: str = "INFO"
    sim_supervisor_token: str = ""
    sim_supervisor_mode: str = "drive"

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else Path("var") / "agent" / self.name

    @property
    def robot_spec(self) -> str | None:
        """The driver to build (`--robot`, or `sim` for --sim), None when neither was given."""
        return self.robot or ("sim" if self.sim else None)

    @property
    def websocket_url(self) -> str:
        return robot_websocket_url(self.server)

    def validate(self) -> None:
        if not self.server:
            raise ConfigError("no server URL: pass --server or set FOREMAN_SERVER")
        robot_websocket_url(self.server)
        if not self.token:
            raise ConfigError("no robot token: pass --token or set FOREMAN_TOKEN")
        if self.max_viewers < 1:
            raise ConfigError(f"--max-viewers must be at least 1, not {self.max_viewers}")
        if not 0.005 <= self.video_bits_per_pixel <= 2.0:
            raise ConfigError(f"--video-bits-per-pixel must be between 0.005 and 2, not {self.video_bits_per_pixel}")
        if self.sim_supervisor_mode not in {"drive", "resume"}:
            raise ConfigError(f"--sim-supervisor-mode must be drive or resume, not {self.sim_supervisor_mode!r}")
        if self.offline_policy not in {"finish", "hold"}:
            raise ConfigError(f"--offline-policy must be finish or hold, not {self.offline_policy!r}")
        if self.sim and self.robot not in (None, "sim"):
            raise ConfigError(f"--sim drives the nut station, --robot {self.robot} another robot: pass one of them")
        positive = (self.time_scale, 1.0 if self.control_hz is None else self.control_hz, self.video_fps, 1.0 if self.record_fps is None else self.record_fps)
        if min(positive) <= 0:
            raise ConfigError("--time-scale, --control-hz, --video-fps and --record-fps must be > 0")
        if not 0 <= self.intervention_confidence <= self.warning_confidence <= 1:
            raise ConfigError("need 0 ≤ intervention_confidence ≤ warning_confidence ≤ 1")
        if self.refill_below < 1 or self.prefix_length < 0:
            raise ConfigError("--refill-below must be ≥ 1 and --prefix-length ≥ 0")


def robot_websocket_url(server: str) -> str:
    """http://host:port[/prefix] → ws://host:port[/prefix]/ws/robot/ (ws/wss URLs are accepted as-is)."""
    parts = urlsplit(server)
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"server URL must be http(s)://host[:port], got {server!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/ws/robot"):
        path += "/ws/robot"
    return urlunsplit((schemes[parts.scheme], parts.netloc, path + "/", "", ""))


def http_base_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if path.endswith("/ws/robot"):
        path = path[: -len("/ws/robot")]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m robot_agent",
        description="Foreman robot agent. Every setting can also come from a TOML file (--config) or "
        "the environment as FOREMAN_<SETTING> (e.g. FOREMAN_SERVER, FOREMAN_TOKEN, FOREMAN_ICE_LOOPBACK=1, "
        "FOREMAN_CAMERA=head=/dev/video0,wrist=clip.mp4); the command line wins.",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML file with settings (keys as below, with underscores)")
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        env = f"(env FOREMAN_{setting.name.upper()})"
        if setting.flag_only:
            parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=f"{setting.help} {env}")
        elif setting.name == "robot_options":
            continue  # --robot.KEY=VALUE, taken out before argparse sees it (split_robot_options)
        elif setting.name == "camera":
            parser.add_argument(flag, action="append", metavar="NAME=SOURCE", default=argparse.SUPPRESS, help=f"{setting.help} {env}")
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar=setting.name.upper(), help=f"{setting.help} {env}")
    return parser


def load_config(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> AgentConfig:
    """Defaults < TOML file < environment < command line. Raises ConfigError with a one-line reason."""
    environ = dict(os.environ if environ is None else environ)
    own, robot_options = split_robot_options(list(argv) if argv is not None else sys.argv[1:])
    args = vars(build_parser().parse_args(own))
    if robot_options:
        args["robot_options"] = robot_options
    raw: dict[str, Any] = {}
    config_file = args.pop("config", None) or environ.get("FOREMAN_CONFIG")
    if config_file:
        try:
            raw.update(tomllib.loads(Path(config_file).read_text()))
        except OSError as error:
            raise ConfigError(f"cannot read config file {config_file}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {config_file} is not valid TOML: {error}") from None
        raw = {k.replace("-", "_"): v for k, v in raw.items()}
        if "cameras" in raw:
            raw["camera"] = raw.pop("cameras")
    known = {s.name: s for s in SETTINGS}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in {config_file}: {', '.join(sorted(unknown))}")
    for name in known:
        value = environ.get(f"FOREMAN_{name.upper()}")
        if value is not None and value != "":
            raw[name] = value
    raw.update(args)
    config = AgentConfig()
    for name, value in raw.items():
        try:
            setattr(config, name, known[name].parse(value))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"bad value for {name}: {value!r} ({error})") from None
    config.validate()
    return config
