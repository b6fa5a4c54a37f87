"""Safety primitives: the persisted e-stop latch and velocity limits."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class EstopLatch:
    """The robot's own e-stop latch. Persisted (atomically, fsynced) so it survives agent restarts:
    once set it stays set until `clear_estop`, whatever happens to the process or the link."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "estop.json"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.reason = ""
        self.estopped = False
        try:
            data = json.loads(self.path.read_text())
            self.estopped = bool(data.get("estopped", False))
            self.reason = str(data.get("reason", ""))
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            # An unreadable latch file must fail safe: treat it as latched.
            log.error("e-stop latch file %s is unreadable: treating the robot as e-stopped", self.path)
            self.estopped = True
            self.reason = "latch file unreadable"

    def set(self, reason: str) -> None:
        self.estopped = True
        self.reason = reason
        self._write()

    def clear(self) -> None:
        self.estopped = False
        self.reason = ""
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            json.dump({"estopped": self.estopped, "reason": self.reason, "at": time.time()}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class VelocityLimits:
    max_speed: float = 0.25  # m/s per end-effector axis
    max_spin: float = 5.0  # rev/s of the nut driver

    def clamp_speed(self, value: float) -> float:
        return max(-self.max_speed, min(self.max_speed, value))

    def clamp_spin(self, value: float) -> float:
        return max(-self.max_spin, min(self.max_spin, value))
