"""A Janus configuration for Foreman's SFU: the VideoRoom plugin and the WebSocket transport only,
signed-token auth with FOREMAN_SFU_TOKEN_SECRET, room creation locked with FOREMAN_SFU_ADMIN_KEY,
candidates gathered on the interfaces named. `manage.py janus_config --out DIR` writes it; the
tests start Debian's janus with it (`janus -F DIR -C DIR/janus.jcfg`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGINS_KEPT = {"libjanus_videoroom.so"}
TRANSPORTS_KEPT = {"libjanus_websockets.so"}


def _others(folder: str, kept: set[str]) -> str:
    directory = LIBRARIES / folder
    names = sorted(p.name for p in directory.glob("libjanus_*.so")) if directory.is_dir() else []
    return ",".join(name for name in names if name not in kept)


def janus_config_files(directory: Path, *, ws_port: int, token_secret: str, admin_key: str, ws_ip: str = "127.0.0.1",
                       interfaces: str = "lo", rtp_ports: tuple[int, int] = (20000, 40000), debug_level: int = 4) -> dict[str, str]:
    """File name → text of a Janus configuration read from `directory`."""
    for value in (token_secret, admin_key, ws_ip, interfaces):
        if '"' in value or "\n" in value:
            raise ValueError("Janus configuration values may not contain quotes or newlines")
    janus = f"""general: {{
	configs_folder = "{directory}"
	plugins_folder = "{LIBRARIES / 'plugins'}"
	transports_folder = "{LIBRARIES / 'transports'}"
	events_folder = "{LIBRARIES / 'events'}"
	loggers_folder = "{LIBRARIES / 'loggers'}"
	debug_level = {debug_level}
	token_auth = true
	token_auth_secret = "{token_secret}"
	session_timeout = 60
}}
media: {{
	rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}"
}}
nat: {{
	ice_enforce_list = "{interfaces}"
	full_trickle = false
	ignore_mdns = true
}}
plugins: {{
	disable = "{_others('plugins', PLUGINS_KEPT)}"
}}
transports: {{
	disable = "{_others('transports', TRANSPORTS_KEPT)}"
}}
events: {{
	broadcast = false
}}
loggers: {{
	disable = "{_others('loggers', set())}"
}}
"""
    websockets = f"""general: {{
	json = "compact"
	ws = true
	ws_port = {ws_port}
	ws_ip = "{ws_ip}"
	wss = false
	admin_ws = false
}}
"""
    videoroom = f"""general: {{
	admin_key = "{admin_key}"
	lock_rtp_forward = true
	string_ids = true
}}
"""
    return {"janus.jcfg": janus, "janus.transport.websockets.jcfg": websockets, "janus.plugin.videoroom.jcfg": videoroom}


def write_janus_config(directory: Path, files: dict[str, str]) -> Path:
    """Write `janus_config_files(directory, …)` into `directory`; returns the path of janus.jcfg."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory / "janus.jcfg"


LOOPBACK_INTERFACE = "foreman-sfu0"


def prepare_loopback_interface() -> str:
    """Janus never gathers ICE candidates on a loopback interface (its ice.c skips IFF_LOOPBACK), and
    in a loopback-only network namespace it then has no address at all ("Error setting ICE locally").
    For tests, benchmarks and sandboxed demos, give it 127.0.0.1 on an interface that is not flagged
    loopback: one end of a veth pair inside the namespace, IPv6 off, so every packet still goes to
    127.0.0.1. Refuses outside a loopback-only namespace (it would change the machine's network).
    Returns the interface name to put in Janus's ice_enforce_list."""
    import socket

    names = {name for _, name in socket.if_nameindex()}  # this namespace's (/sys/class/net may show the host's)
    peer = LOOPBACK_INTERFACE[:-1] + "1"
    if LOOPBACK_INTERFACE in names:
        return LOOPBACK_INTERFACE
    if names - {"lo"}:
        raise RuntimeError(f"Janus on loopback needs a loopback-only network namespace (this one has {', '.join(sorted(names))}): "
                           "run it as the browser tests and benchmarks do, under `unshare -n`")
    for command in (["ip", "link", "add", LOOPBACK_INTERFACE, "type", "veth", "peer", "name", peer],
                    ["sysctl", "-q", "-w", f"net.ipv6.conf.{LOOPBACK_INTERFACE}.disable_ipv6=1"],
                    ["sysctl", "-q", "-w", f"net.ipv6.conf.{peer}.disable_ipv6=1"],
                    ["ip", "addr", "add", "127.0.0.1/32", "dev", LOOPBACK_INTERFACE],
                    ["ip", "link", "set", LOOPBACK_INTERFACE, "up"],
                    ["ip", "link", "set", peer, "up"]):
        subprocess.run(command, check=True, capture_output=True, timeout=10)
    return LOOPBACK_INTERFACE


def start_janus(directory: Path, *, ws_port: int, token_secret: str, admin_key: str, rtp_ports: tuple[int, int],
                interfaces: str = "lo") -> subprocess.Popen[bytes]:
    """Write the configuration into `directory` and start Debian's janus with it (its log:
    directory/janus.log); returns once its WebSocket API accepts connections (or raises RuntimeError)."""
    import shutil
    import socket
    import time

    executable = shutil.which("janus")
    if executable is None:
        raise RuntimeError("Debian's janus is not installed (apt-get install janus)")
    config = write_janus_config(directory, janus_config_files(directory, ws_port=ws_port, token_secret=token_secret, admin_key=admin_key,
                                                              rtp_ports=rtp_ports, interfaces=interfaces))
    log = directory / "janus.log"
    process = subprocess.Popen([executable, "-F", str(directory), "-C", str(config)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", ws_port), timeout=0.5):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"janus did not start; see {log}:\n{log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.1)
