"""A stand-in for a Feetech servo bus (the SO-100/101 arm's six STS3215 servos), tests only.

It is the hardware side of a serial line: a pseudo-terminal whose far end LeRobot's own
FeetechMotorsBus opens as the arm's port (`--robot.port=/dev/pts/N`) and talks to through the
Feetech SDK and pyserial, unmodified. The stand-in answers the SCS protocol (ping, read, write,
sync read, sync write) from a control table per servo and moves each servo's position toward its
goal at a servo's speed while its torque is on, so what LeRobot reads back is what a real bus gives.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field

INST_PING, INST_READ, INST_WRITE, INST_SYNC_READ, INST_SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST_ID = 0xFE
MODEL_NUMBER_STS3215 = 777
# The STS3215 control table addresses this stand-in gives meaning to (lerobot/motors/feetech/tables.py).
FIRMWARE_MAJOR, FIRMWARE_MINOR, MODEL_NUMBER = 0, 1, 3
MIN_POSITION_LIMIT, MAX_POSITION_LIMIT, HOMING_OFFSET = 9, 11, 31
TORQUE_ENABLE, GOAL_POSITION, PRESENT_POSITION, MOVING = 40, 42, 56, 66
RESOLUTION = 4096
SPEED_STEPS_S = 3000.0  # an STS3215 at 12 V: about 0.2 s per 60 degrees


def sign_magnitude(value: int, sign_bit: int) -> int:
    return (1 << sign_bit) | (-value) if value < 0 else value


def from_sign_magnitude(raw: int, sign_bit: int) -> int:
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


@dataclass
class Servo:
    servo_id: int
    position: float = 2048.0  # the shaft's real position in steps (before the homing offset)
    memory: bytearray = field(default_factory=lambda: bytearray(256))

    def __post_init__(self) -> None:
        self.memory[FIRMWARE_MAJOR], self.memory[FIRMWARE_MINOR] = 3, 10
        self.poke(MODEL_NUMBER, MODEL_NUMBER_STS3215)
        self.memory[5] = self.servo_id
        self.poke(MAX_POSITION_LIMIT, RESOLUTION - 1)
        self.hold_here()

    def hold_here(self) -> None:
        """Goal = present position, as a servo powers up: torque on, it stays where it is."""
        self.poke(GOAL_POSITION, sign_magnitude(round(self.position) - self.homing_offset, 15))

    def poke(self, address: int, value: int, size: int = 2) -> None:
        self.memory[address:address + size] = value.to_bytes(size, "little")

    def peek(self, address: int, size: int = 2) -> int:
        return int.from_bytes(self.memory[address:address + size], "little")

    @property
    def homing_offset(self) -> int:
        return from_sign_magnitude(self.peek(HOMING_OFFSET), 11)

    def advance(self, seconds: float) -> None:
        """Move toward the goal for `seconds` while the torque is on (present = actual - offset)."""
        if not self.memory[TORQUE_ENABLE]:
            self.memory[MOVING] = 0
        else:
            goal = from_sign_magnitude(self.peek(GOAL_POSITION), 15) + self.homing_offset
            step = max(-SPEED_STEPS_S * seconds, min(SPEED_STEPS_S * seconds, goal - self.position))
            self.position += step
            self.memory[MOVING] = int(abs(goal - self.position) > 1)
        self.poke(PRESENT_POSITION, sign_magnitude(round(self.position) - self.homing_offset, 15))

    def write(self, address: int, data: bytes) -> None:
        if address < 5:  # firmware and model number are read-only
            return
        self.memory[address:address + len(data)] = data  # a goal without torque waits for the torque


class FeetechBusStandIn:
    """Servos 1..n on a pseudo-terminal; `port` is the path LeRobot opens."""

    def __init__(self, servo_ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> None:
        self.servos = {servo_id: Servo(servo_id) for servo_id in servo_ids}
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)  # no echo, no line discipline: bytes pass as they are
        self.port = os.ttyname(self.slave)
        self.lock = threading.Lock()
        self.silent = False  # True: the bus answers nothing (a cable pulled)
        self.packets = 0
        self.stopped = threading.Event()
        self.last_advance = time.monotonic()
        self.thread = threading.Thread(target=self._serve, name="feetech-standin", daemon=True)

    def __enter__(self) -> FeetechBusStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)

    def calibrate(self, calibration: dict[int, tuple[int, int, int]]) -> None:
        """Write (homing_offset, range_min, range_max) per servo id, as `lerobot-calibrate` would have."""
        with self.lock:
            for servo_id, (offset, low, high) in calibration.items():
                servo = self.servos[servo_id]
                servo.poke(HOMING_OFFSET, sign_magnitude(offset, 11))
                servo.poke(MIN_POSITION_LIMIT, low)
                servo.poke(MAX_POSITION_LIMIT, high)
                servo.hold_here()
                servo.advance(0.0)

    def present(self, servo_id: int) -> int:
        with self.lock:
            return from_sign_magnitude(self.servos[servo_id].peek(PRESENT_POSITION), 15)

    # ------------------------------------------------------------------ the wire

    def _serve(self) -> None:
        buffer = bytearray()
        while not self.stopped.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            self._advance()
            if not ready:
                continue
            try:
                buffer += os.read(self.master, 4096)
            except OSError:
                return
            while True:
                packet = self._take_packet(buffer)
                if packet is None:
                    break
                if not self.silent:
                    self._answer(*packet)

    def _advance(self) -> None:
        now = time.monotonic()
        with self.lock:
            for servo in self.servos.values():
                servo.advance(now - self.last_advance)
        self.last_advance = now

    @staticmethod
    def _take_packet(buffer: bytearray) -> tuple[int, int, bytes] | None:
        """(id, instruction, parameters) of the first whole packet in `buffer`, removed from it."""
        while len(buffer) >= 2 and buffer[:2] != b"\xff\xff":
            del buffer[0]
        if len(buffer) < 4:
            return None
        length = buffer[3]
        if len(buffer) < 4 + length:
            return None
        packet = bytes(buffer[: 4 + length])
        del buffer[: 4 + length]
        if (~sum(packet[2:-1])) & 0xFF != packet[-1]:
            return None  # a corrupt packet: a servo ignores it
        return packet[2], packet[4], packet[5:-1]

    def _reply(self, servo_id: int, data: bytes = b"") -> None:
        body = bytes([servo_id, len(data) + 2, 0]) + data
        os.write(self.master, b"\xff\xff" + body + bytes([(~sum(body)) & 0xFF]))

    def _answer(self, servo_id: int, instruction: int, params: bytes) -> None:
        self.packets += 1
        self._advance()
        with self.lock:
            if instruction == INST_SYNC_READ and servo_id == BROADCAST_ID:
                address, size = params[0], params[1]
                for target in params[2:]:
                    if target in self.servos:
                        self._reply(target, bytes(self.servos[target].memory[address:address + size]))
            elif instruction == INST_SYNC_WRITE and servo_id == BROADCAST_ID:
                address, size = params[0], params[1]
                for start in range(2, len(params), size + 1):
                    target = params[start]
                    if target in self.servos:
                        self.servos[target].write(address, params[start + 1:start + 1 + size])
            elif servo_id == BROADCAST_ID and instruction == INST_PING:
                for target in self.servos:
                    self._reply(target)
            elif servo_id in self.servos:
                servo = self.servos[servo_id]
                if instruction == INST_PING:
                    self._reply(servo_id)
                elif instruction == INST_READ:
                    self._reply(servo_id, bytes(servo.memory[params[0]:params[0] + params[1]]))
                elif instruction == INST_WRITE:
                    servo.write(params[0], params[1:])
                    self._reply(servo_id)
