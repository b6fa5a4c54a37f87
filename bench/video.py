"""bench video: what live video costs the robot and what the viewer gets, through the full app.

1. render (no browser): the sim's head camera as live video draws it (VideoRenderer: static layer
   kept, moving shapes redrawn) against the reference renderer, ms per frame at 640×480 and 320×240
   over a simulated cycle.
2. encode (no browser): the agent's stream encoder (robot_agent/encoding.py: VP8, and H.264 with
   libx264 zerolatency) on those frames at its default budget (0.06 bits per pixel), CPU % of a core
   for a full-size stream (640×480 at 30 fps) and a tile stream (320×240 at 15 fps), the bitrate out
   and the PSNR of the decoded picture. The agent prefers the cheaper codec (`--video-codecs`, default vp8,h264).
3. full-size stream (`manage.py demo --robots 4`, Chromium on robot r1's page): glass-to-glass — the
   agent's `frame_clock` messages map each frame's RTP timestamp to its capture time,
   `requestVideoFrameCallback` gives its display time, one machine, one clock; and the same from the
   capture-time bar code in the frame (STAMP_READER) — fps, frames dropped, and r1's agent CPU with
   0, 1, 2 and 4 viewers (each peer-to-peer viewer is its own encode).
   Once more with the agents on H.264 (`FOREMAN_VIDEO_CODECS=h264`): Chromium decodes both.
   Then through Debian's Janus (FOREMAN_SFU_URL): glass-to-glass by the bar code, r1's CPU with 0, 1
   and 16 viewers of the same feed (15 aiortc subscribers in a process of their own, bench/sfu_viewers.py).
4. tiles: the fleet page with 4 robots (r1's CPU for its tile stream), then `--robots 8` and `16`
   with the fleet page showing every tile: how many are live and the slowest tile's fps.
Runs inside a loopback-only network namespace (re-executes itself there).
"""

from __future__ import annotations

import fractions
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.common import finish, in_namespace, percentile, reexec_isolated, start_demo, stop_demo

MEASURE_S = 10.0
SETTLE_S = 5.0
TILES_WATCH_S = 20.0
TICKS = os.sysconf("SC_CLK_TCK")
ROBOT_PAGE = "/robots/r1/?cameras=one"  # one full-size stream (the page shows every camera at once otherwise)
CHROMIUM_ARGS = ["--no-sandbox", "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]


def agent_pid(name: str) -> int:
    """The robot agent process started by the demo for robot `name`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"robot_agent" in args and b"--name" in args and args[args.index(b"--name") + 1] == name.encode():
            return int(entry.name)
    raise RuntimeError(f"no agent process for {name}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def cpu_pct(pid: int, seconds: float) -> float:
    start, begun = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return round(100.0 * (cpu_seconds(pid) - start) / (time.monotonic() - begun), 1)


# ---------------------------------------------------------------- 1 and 2: render and encode, in process


def sim_frames(count: int) -> Iterator[Any]:
    """Scenes of simulated cycles under the scripted expert, one per 30 Hz control step: what a 30 fps
    camera sees at time scale 1 (the static layer changes as often as it does live)."""
    from foreman_sim.expert import Expert
    from foreman_sim.render import scene_of
    from foreman_sim.station import NutStation

    station = NutStation(21)
    produced = 0
    while produced < count:
        station.step(Expert.action(station))
        if station.outcome.done:
            station.reset(station.seed + 1)
        produced += 1
        yield scene_of(station)


def measure_render() -> dict[str, Any]:
    from foreman_sim.render import VideoRenderer, render_scene

    scenes = list(sim_frames(1800))  # a minute of video: several nuts installed, a new part
    result: dict[str, Any] = {}
    for width, height in ((640, 480), (320, 240)):
        renderer = VideoRenderer()
        started = time.perf_counter()
        for scene in scenes:
            renderer.render(scene, "head", (width, height))
        cached = (time.perf_counter() - started) / len(scenes) * 1000
        started = time.perf_counter()
        for scene in scenes[::30]:
            render_scene(scene, "head", (width, height))
        reference = (time.perf_counter() - started) / len(scenes[::30]) * 1000
        result[f"{width}x{height}"] = {"video_ms": round(cached, 3), "reference_ms": round(reference, 3)}
    return result


def measure_encode() -> dict[str, Any]:
    """CPU % of one core to encode a stream with the agent's StreamEncoder at its default budget
    (process CPU: libvpx/x264 threads count), what it sends and how faithful the decoded picture is."""
    import av
    import numpy as np

    from foreman_sim.render import VideoRenderer
    from robot_agent.encoding import BITS_PER_PIXEL, StreamEncoder, stream_bitrate

    renderer = VideoRenderer()
    scenes = list(sim_frames(240))
    result: dict[str, Any] = {}
    for label, (width, height), fps in (("full", (640, 480), 30.0), ("tile", (320, 240), 15.0)):
        frames = []
        for index, scene in enumerate(scenes):
            frame = av.VideoFrame.from_ndarray(renderer.render(scene, "head", (width, height)), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = int(index * 90_000 / fps), fractions.Fraction(1, 90_000)
            frames.append(frame)
        budget = stream_bitrate(width, height, fps, bits_per_pixel=BITS_PER_PIXEL)
        # Each codec at the budget; VP8 at full size also at 1.5 Mbit/s, where aiortc's own encoder
        # settled on loopback (REMB): what the budget saves and what it costs the picture.
        runs = [("vp8", "video/VP8", budget, ""), ("h264", "video/H264", budget, "")]
        if label == "full":
            runs.append(("vp8", "video/VP8", 1_500_000, "_1500k"))
        for codec, mime, bitrate, suffix in runs:
            encoder, packets = StreamEncoder(mime), []
            started = time.process_time()
            for frame in frames:
                packets.extend(encoder.encode(frame, bitrate))
            per_frame_s = (time.process_time() - started) / len(frames)
            decoder = av.CodecContext.create(codec, "r")
            assert isinstance(decoder, av.VideoCodecContext)
            decoded = [d.to_ndarray() for packet in packets for d in decoder.decode(packet)]  # yuv420p planes, as encoded
            errors = [float(np.mean((d.astype(np.float64) - f.to_ndarray()) ** 2)) for d, f in zip(decoded, frames, strict=True)]
            psnr = 10 * np.log10(255**2 / max(float(np.mean(errors)), 1e-9))
            result[f"{codec}_{label}{suffix}"] = {
                "ms_per_frame": round(per_frame_s * 1000, 2), "cpu_pct": round(per_frame_s * fps * 100, 1),
                "kbit_s": round(sum(p.size for p in packets) * 8 * fps / len(frames) / 1000), "bitrate_asked_kbit_s": round(bitrate / 1000),
                "psnr_db": round(float(psnr), 1), "size": f"{width}x{height}", "fps": fps}
    return result


# ---------------------------------------------------------------- 3 and 4: through the app, in Chromium

COLLECT = """() => {
  const p = window.foreman.player;
  window.__g2g = [];
  const push = p.g2g.push.bind(p.g2g);
  p.g2g.push = (...values) => { window.__g2g.push(...values); return push(...values); };
  const q = document.querySelector('video').getVideoPlaybackQuality();
  window.__start = {frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, t: performance.now()};
}"""

REPORT = """() => {
  const q = document.querySelector('video').getVideoPlaybackQuality();
  const s = window.__start;
  return {g2g: window.__g2g, fps: (q.totalVideoFrames - s.frames) / ((performance.now() - s.t) / 1000),
          dropped: q.droppedVideoFrames - s.dropped, frames: q.totalVideoFrames - s.frames};
}"""

# Glass-to-glass from the frame itself (agents started with FOREMAN_STAMP_FRAMES=1): read the capture
# time bar code (robot_agent/cameras.py stamp_frame: 40 cells of 32 px in the top 64 rows of a 640-px
# frame, white = 1, MSB first, 24-bit epoch ms + CRC-16/CCITT-FALSE) in requestVideoFrameCallback.
# Works whatever carried the frame (peer to peer or through Janus, which rewrites RTP timestamps).
STAMP_READER = """() => {
  const video = document.querySelector('video');
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  window.__stampG2g = []; window.__stampBad = 0;
  const crc16 = (bytes) => { let crc = 0xFFFF; for (const b of bytes) { crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xFFFF : (crc << 1) & 0xFFFF; } return crc; };
  const onFrame = (now, meta) => {
    if (video.videoWidth === 640) {
      ctx.drawImage(video, 0, 0, 640, 64, 0, 0, 640, 64);
      const data = ctx.getImageData(0, 0, 640, 64).data;
      let payload = 0n, ok = true;
      for (let bit = 0; bit < 40 && ok; bit++) {
        const top = Math.floor(bit / 20) * 32, left = (bit % 20) * 32;
        let sum = 0, n = 0;
        for (let y = top + 8; y < top + 24; y += 2) for (let x = left + 8; x < left + 24; x += 2) {
          const i = (y * 640 + x) * 4; sum += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]; n++; }
        const level = sum / n;
        if (level >= 64 && level <= 191) ok = false;
        payload = (payload << 1n) | (level > 127 ? 1n : 0n);
      }
      const word = Number(payload >> 16n);
      if (ok && crc16([(word >> 16) & 255, (word >> 8) & 255, word & 255]) === Number(payload & 0xFFFFn)) {
        const span = 2 ** 24, capture = word + Math.round((Date.now() - word) / span) * span;
        window.__stampG2g.push(performance.timeOrigin + (meta.expectedDisplayTime ?? meta.presentationTime) - capture);
      } else window.__stampBad++;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}"""

TILE_FRAMES = """() => Object.fromEntries([...window.foreman.tiles.entries()].map(([name, t]) =>
  [name, {state: t.player ? t.player.state : null, frames: t.video.getVideoPlaybackQuality().totalVideoFrames, width: t.video.videoWidth}]))"""


@contextmanager
def demo_running(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    work = Path(tempfile.mkdtemp(prefix="foreman-bench-video-"))
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})  # the demo's agents inherit it
    try:
        demo, url, _ = start_demo(work, *args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield url
    except BaseException:
        stop_demo(demo)
        print(f"the demo's log is kept in {work / 'demo.log'}", flush=True)
        raise
    stop_demo(demo)
    shutil.rmtree(work, ignore_errors=True)


def log_in(context: Any, url: str, landing: str) -> Any:
    page = context.new_page()
    page.set_default_timeout(120_000)  # 16 agents saturate both cores: the server answers slowly
    page.goto(f"{url}/accounts/login/?next={quote(landing)}")
    page.fill("input[name=username]", "supervisor")
    page.fill("input[name=password]", "foreman")
    page.click("button[type=submit]")
    return page


def robot_page_live(page: Any) -> None:
    page.wait_for_function("window.foreman && window.foreman.player && window.foreman.player.state === 'live' && "
                           "window.foreman.player.frames > 30", timeout=60_000)


def full_size_stream(browser: Any, codec: str) -> dict[str, Any]:
    """Robot r1's page: glass-to-glass and fps with one viewer; r1's CPU with 0, 1, 2, 4 viewers (VP8 only)."""
    with demo_running("--robots", "4", env={"FOREMAN_VIDEO_CODECS": codec, "FOREMAN_STAMP_FRAMES": "1"}) as url:
        time.sleep(SETTLE_S)
        pid = agent_pid("r1")
        by_viewers: dict[str, float] = {}
        if codec == "vp8":
            print("agent r1 CPU with no viewer…", flush=True)
            by_viewers["0"] = cpu_pct(pid, MEASURE_S)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pages: list[Any] = []
        first: dict[str, Any] = {}
        for viewers in (1, 2, 4) if codec == "vp8" else (1,):
            while len(pages) < viewers:
                page = log_in(context, url, ROBOT_PAGE) if not pages else context.new_page()
                if pages:
                    page.goto(f"{url}{ROBOT_PAGE}")
                robot_page_live(page)
                pages.append(page)
            if viewers == 1:
                pages[0].evaluate(STAMP_READER)
            time.sleep(SETTLE_S)
            if viewers == 1:
                pages[0].evaluate(COLLECT)
            print(f"{codec}: agent r1 CPU with {viewers} viewer(s)…", flush=True)
            by_viewers[str(viewers)] = cpu_pct(pid, MEASURE_S)
            if viewers == 1:
                first = pages[0].evaluate(REPORT)
                first["stamp_g2g"] = pages[0].evaluate("window.__stampG2g")
        context.close()
    return {"report": first, "cpu_by_viewers": by_viewers}


def sfu_stream(browser: Any) -> dict[str, Any]:
    """Robot r1's page through Janus: glass-to-glass (bar code), r1's CPU with 0 viewers, 1 (the page)
    and 16 (15 more aiortc subscribers of the same feed, in a process of their own)."""
    import json
    import secrets
    import subprocess
    import sys

    from webapp.fleet.janus_config import prepare_loopback_interface, start_janus
    from webapp.launcher import free_port

    work = Path(tempfile.mkdtemp(prefix="foreman-bench-janus-"))
    secret, admin_key, port = secrets.token_hex(16), secrets.token_hex(8), free_port()
    janus = start_janus(work, ws_port=port, token_secret=secret, admin_key=admin_key, rtp_ports=(45000, 45999),
                        interfaces=prepare_loopback_interface())
    env = {"FOREMAN_SFU_URL": f"ws://127.0.0.1:{port}", "FOREMAN_SFU_TOKEN_SECRET": secret, "FOREMAN_SFU_ADMIN_KEY": admin_key,
           "FOREMAN_STAMP_FRAMES": "1"}
    try:
        with demo_running("--robots", "4", env=env) as url:
            time.sleep(SETTLE_S)
            pid = agent_pid("r1")
            print("SFU: agent r1 CPU with no viewer…", flush=True)
            by_viewers = {"0": cpu_pct(pid, MEASURE_S)}
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = log_in(context, url, ROBOT_PAGE)
            page.wait_for_function("window.foreman && window.foreman.player && window.foreman.player.state === 'live' && "
                                   "window.foreman.player.via === 'sfu' && window.foreman.player.frames > 30", timeout=60_000)
            page.evaluate(STAMP_READER)
            time.sleep(SETTLE_S)
            page.evaluate(COLLECT)
            print("SFU: agent r1 CPU with 1 viewer…", flush=True)
            by_viewers["1"] = cpu_pct(pid, MEASURE_S)
            first = page.evaluate(REPORT)
            g2g = page.evaluate("window.__stampG2g")
            view = page.evaluate("window.foreman.socket.request({type: 'sfu_view', robot: 'r1', camera: 'head'})")
            viewers = subprocess.Popen([sys.executable, "-m", "bench.sfu_viewers", json.dumps(view["grant"]), view["feed"], "15",
                                        str(MEASURE_S + 2)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
            assert viewers.stdout is not None
            deadline = time.monotonic() + 90
            while viewers.stdout.readline().strip() != "watching":
                if viewers.poll() is not None or time.monotonic() > deadline:
                    viewers.kill()
                    raise RuntimeError("the extra SFU viewers did not start")
            page.evaluate(COLLECT)
            print("SFU: agent r1 CPU with 16 viewers…", flush=True)
            by_viewers["16"] = cpu_pct(pid, MEASURE_S)
            during = page.evaluate(REPORT)
            out, _ = viewers.communicate(timeout=60)
            extra = json.loads(out.strip().splitlines()[-1])
            context.close()
    finally:
        janus.terminate()
        janus.wait(timeout=10)
    return {"cpu_by_viewers": by_viewers, "g2g": g2g, "fps": first.get("fps", 0.0), "fps_with_16": during.get("fps", 0.0),
            "extra_viewer_fps": extra["fps"]}


def tiles(browser: Any, robots: int) -> dict[str, Any]:
    """The fleet page with every tile on screen: tile streams live and their fps; with 4 robots, r1's CPU for its tile."""
    with demo_running("--robots", str(robots)) as url:
        time.sleep(SETTLE_S if robots <= 4 else 6 * SETTLE_S)  # 16 agents take a while to load their policies
        pid = agent_pid("r1")
        idle = cpu_pct(pid, MEASURE_S) if robots <= 4 else None
        context = browser.new_context(viewport={"width": 1920, "height": 1800})  # 16 tiles on screen: none paused
        page = log_in(context, url, "/")
        page.wait_for_function(f"window.foreman && window.foreman.tiles && window.foreman.tiles.size === {robots}", timeout=60_000)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = page.evaluate(TILE_FRAMES)
            if all(tile["state"] == "live" and tile["frames"] > 5 for tile in states.values()):
                break
            time.sleep(1.0)
        time.sleep(SETTLE_S)
        print(f"fleet page, {robots} robots: watching the tiles…", flush=True)
        start, started = page.evaluate(TILE_FRAMES), time.monotonic()
        watched = None
        if robots <= 4:
            watched = cpu_pct(pid, TILES_WATCH_S)
        else:
            time.sleep(TILES_WATCH_S)
        end, elapsed = page.evaluate(TILE_FRAMES), time.monotonic() - started
        context.close()
    fps = {name: round((end[name]["frames"] - start[name]["frames"]) / elapsed, 1) for name in end}
    live = sum(1 for name in end if end[name]["state"] == "live" and fps[name] > 0)
    result: dict[str, Any] = {"robots": robots, "live": live, "fps": fps, "widths": sorted({tile["width"] for tile in end.values()})}
    if idle is not None and watched is not None:
        result.update(idle_cpu_pct=idle, tile_cpu_pct=watched)
    return result


def tiles_or_failure(browser: Any, robots: int) -> dict[str, Any]:
    """A fleet too big for this machine is a measured ceiling, not a crash of the whole bench."""
    try:
        return tiles(browser, robots)
    except Exception as error:  # noqa: BLE001 - recorded in the result and said in the summary
        print(f"fleet page, {robots} robots: failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}", flush=True)
        return {"robots": robots, "live": 0, "fps": {}, "widths": [], "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}


def run() -> dict[str, Any]:
    if not in_namespace():
        code = reexec_isolated("video")
        if code:
            raise SystemExit(code)
        return {}
    from playwright.sync_api import sync_playwright

    print("render: video renderer vs reference…", flush=True)
    render = measure_render()
    print("encode: VP8 and H.264, full-size and tile streams…", flush=True)
    encode = measure_encode()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
        vp8 = full_size_stream(browser, "vp8")
        h264 = full_size_stream(browser, "h264")
        through_sfu = sfu_stream(browser)
        four = tiles(browser, 4)
        eight = tiles_or_failure(browser, 8)
        sixteen = tiles_or_failure(browser, 16)
        browser.close()

    by_viewers = vp8["cpu_by_viewers"]
    first = vp8["report"]
    g2g = first.get("g2g", [])
    h264_g2g = h264["report"].get("g2g", [])
    per_stream = round(by_viewers["1"] - by_viewers["0"], 1)
    extra = round((by_viewers["4"] - by_viewers["1"]) / 3, 1)
    tile_cost = round(four["tile_cpu_pct"] - four["idle_cpu_pct"], 1)
    chosen = min(("vp8", "h264"), key=lambda codec: encode[f"{codec}_full"]["cpu_pct"])
    metrics = {
        "g2g_p50_ms": percentile(g2g, 50), "g2g_p95_ms": percentile(g2g, 95), "g2g_samples": len(g2g),
        "fps": round(first.get("fps", 0.0), 1), "dropped": first.get("dropped"), "frames": first.get("frames"),
        "cpu_pct_per_stream": per_stream, "cpu_pct_per_extra_viewer": extra, "cpu_pct_by_viewers": by_viewers, "robots": 4,
        "render_ms": render["640x480"]["video_ms"], "render_ms_reference": render["640x480"]["reference_ms"], "render": render,
        "encode_cpu_pct": encode[f"{chosen}_full"]["cpu_pct"], "encode_codec": chosen, "encode": encode,
        "h264_g2g_p50_ms": percentile(h264_g2g, 50), "h264_g2g_p95_ms": percentile(h264_g2g, 95),
        "h264_fps": round(h264["report"].get("fps", 0.0), 1), "h264_cpu_pct_per_stream": round(h264["cpu_by_viewers"]["1"] - by_viewers["0"], 1),
        "tile_cpu_pct_per_stream": tile_cost, "tile_widths": four["widths"], "tile_fps_at_4_robots": four["fps"],
        "tiles_live_at_16_robots": sixteen["live"], "tile_fps_min": min(sixteen["fps"].values()) if sixteen["fps"] else 0.0,
        "tile_fps_at_16_robots": sixteen["fps"], "tiles_at_16_robots_error": sixteen.get("error"), "tiles_live_at_8_robots": eight["live"],
        "tile_fps_min_at_8_robots": min(eight["fps"].values()) if eight["fps"] else 0.0,
        "stamp_g2g_p50_ms": percentile(first.get("stamp_g2g", []), 50), "stamp_g2g_p95_ms": percentile(first.get("stamp_g2g", []), 95),
        "sfu_g2g_p50_ms": percentile(through_sfu["g2g"], 50), "sfu_g2g_p95_ms": percentile(through_sfu["g2g"], 95),
        "sfu_g2g_samples": len(through_sfu["g2g"]), "sfu_fps": round(through_sfu["fps"], 1),
        "sfu_cpu_pct_by_viewers": through_sfu["cpu_by_viewers"],
        "sfu_cpu_pct_per_stream": round(through_sfu["cpu_by_viewers"]["1"] - through_sfu["cpu_by_viewers"]["0"], 1),
        "sfu_extra_viewers_cpu_pct": round(through_sfu["cpu_by_viewers"]["16"] - through_sfu["cpu_by_viewers"]["1"], 1),
        "sfu_fps_with_16_viewers": round(through_sfu["fps_with_16"], 1), "sfu_extra_viewer_fps": through_sfu["extra_viewer_fps"],
    }
    goals = {"g2g_p50_ms": "≤ 35 (P2P)", "g2g_p95_ms": "≤ 50 (P2P)", "cpu_pct_per_stream": "≤ 20", "tile_cpu_pct_per_stream": "≤ 5",
             "tiles_live_at_16_robots": "16", "tile_fps_min": "≥ 10", "sfu_g2g_p50_ms": "≤ 45", "sfu_g2g_p95_ms": "≤ 70",
             "sfu_extra_viewers_cpu_pct": "< 10 (viewers 2…16 together)"}
    summary = [
        f"render 640×480: {metrics['render_ms']} ms per frame (reference renderer {metrics['render_ms_reference']} ms); "
        f"320×240: {render['320x240']['video_ms']} ms",
        "encode, % of a core: " + ", ".join(f"{key} {value['cpu_pct']}% ({value['kbit_s']} kbit/s)" for key, value in encode.items())
        + f" → {chosen}",
        f"glass-to-glass p50 {metrics['g2g_p50_ms']} ms, p95 {metrics['g2g_p95_ms']} ms (goals ≤ 35 / ≤ 50); "
        f"{metrics['fps']} fps delivered, {metrics['dropped']} dropped; H.264: p50 {metrics['h264_g2g_p50_ms']} ms, {metrics['h264_fps']} fps",
        f"agent CPU by viewers {by_viewers} → {per_stream}% per full-size stream (goal ≤ 20), {extra}% per extra viewer",
        f"through the SFU: glass-to-glass p50 {metrics['sfu_g2g_p50_ms']} ms, p95 {metrics['sfu_g2g_p95_ms']} ms (goals ≤ 45 / ≤ 70; "
        f"peer to peer by the same bar code: p50 {metrics['stamp_g2g_p50_ms']}, p95 {metrics['stamp_g2g_p95_ms']}); agent CPU by viewers "
        f"{through_sfu['cpu_by_viewers']} → viewers 2…16 add {metrics['sfu_extra_viewers_cpu_pct']}% (goal < 10)",
        f"tile stream: {tile_cost}% of a core (goal ≤ 5), widths {four['widths']}; 8 robots: {eight['live']} tiles live, slowest "
        f"{metrics['tile_fps_min_at_8_robots']} fps; 16 robots: {sixteen['live']} live, slowest {metrics['tile_fps_min']} fps (goal 16 at ≥ 10)",
    ]
    return finish("video", metrics, goals, summary)
