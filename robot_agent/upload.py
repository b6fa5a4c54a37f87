"""Uploads spooled episodes to the server (POST /api/robot/episodes/{episode}/upload).

The spool (state_dir/spool/<episode>/) survives restarts; the uploader retries with backoff while
the server is unreachable and deletes an episode only once the server answered `received` or
`duplicate` (re-uploading is idempotent server-side). Episodes the server refuses (4xx) move to
spool/rejected/ with the reason, so one bad episode never blocks the rest. The files are
foreman_protocol.episodes' format.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from pathlib import Path

import httpx
from pydantic import ValidationError

from foreman_protocol.episodes import METADATA_FILE, STEPS_FILE, EpisodeMetadata

log = logging.getLogger(__name__)


class Uploader:
    def __init__(self, base_url: str, token: str, spool_dir: Path, *, backoff_max_s: float = 30.0, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.spool_dir = spool_dir
        self.rejected_dir = spool_dir / "rejected"
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.wake = asyncio.Event()
        self.uploaded = 0
        self.rejected = 0
        self.failures = 0

    def pending(self) -> list[Path]:
        if not self.spool_dir.exists():
            return []
        items = [p for p in self.spool_dir.iterdir() if p.is_dir() and p.name != "rejected" and (p / METADATA_FILE).exists()]
        return sorted(items, key=lambda p: p.stat().st_mtime)

    async def run(self) -> None:
        delay = 0.5
        async with httpx.AsyncClient(timeout=self.timeout_s, trust_env=False) as client:
            while True:
                ok = True
                for directory in self.pending():
                    ok = await self.upload_one(client, directory)
                    if not ok:
                        break
                if ok:
                    delay = 0.5
                    self.wake.clear()
                    try:
                        await asyncio.wait_for(self.wake.wait(), timeout=30.0)
                    except TimeoutError:
                        pass
                else:
                    self.failures += 1
                    delay = min(self.backoff_max_s, delay * 2)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def upload_one(self, client: httpx.AsyncClient, directory: Path) -> bool:
        """Upload one spooled episode; False means "server unreachable, try again later"."""
        episode = directory.name
        metadata_text = (directory / METADATA_FILE).read_text()
        try:
            cameras = EpisodeMetadata.model_validate_json(metadata_text).cameras
        except ValidationError as error:  # the server would refuse it too: never retry it
            self._reject(directory, f"bad {METADATA_FILE}: {error}")
            return True
        files = []
        handles = []
        try:
            steps = open(directory / STEPS_FILE, "rb")
            handles.append(steps)
            files.append(("steps", (STEPS_FILE, steps, "application/vnd.apache.parquet")))
            for camera in cameras:
                handle = open(directory / f"video_{camera}.mp4", "rb")
                handles.append(handle)
                files.append((f"video_{camera}", (f"{camera}.mp4", handle, "video/mp4")))
            response = await client.post(
                f"{self.base_url}/api/robot/episodes/{episode}/upload",
                data={"metadata": metadata_text}, files=files, headers={"Authorization": f"Bearer {self.token}"},
            )
        except FileNotFoundError as error:
            self._reject(directory, f"incomplete spool entry: {error}")
            return True
        except (httpx.TransportError, OSError) as error:
            log.info("episode %s: upload failed (%s); will retry", episode, error or type(error).__name__)
            return False
        finally:
            for handle in handles:
                handle.close()
        if response.status_code == 200:
            state = response.json().get("state")
            log.info("episode %s uploaded (%s)", episode, state)
            shutil.rmtree(directory, ignore_errors=True)
            self.uploaded += 1
            return True
        if 400 <= response.status_code < 500 and response.status_code not in (401, 408, 429):
            self._reject(directory, f"server answered {response.status_code} {response.text[:2000]}")
            return True
        log.info("episode %s: server answered %s; will retry", episode, response.status_code)
        return False

    def _reject(self, directory: Path, reason: str) -> None:
        """Park an episode that can never be uploaded, so it does not block the others."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        (directory / "rejected.txt").write_text(reason)
        shutil.rmtree(self.rejected_dir / directory.name, ignore_errors=True)
        directory.rename(self.rejected_dir / directory.name)
        self.rejected += 1
        log.error("episode %s cannot be uploaded: %s", directory.name, reason[:300])
