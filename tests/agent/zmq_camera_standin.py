"""A stand-in camera for LeRobot's ZMQ camera (`type: zmq`), tests only; run with LeRobot's python.

    python zmq_camera_standin.py PORT [WIDTH HEIGHT FPS]

Publishes what LeRobot's own image server sends (lerobot/cameras/zmq/image_server.py): JSON with the
camera's JPEG frame in base64 under "images", on tcp://127.0.0.1:PORT. Each frame is grey with a
white bar that moves one column per frame, so a test can tell frames apart and see them move.
"""

import base64
import json
import sys
import time

import cv2
import numpy as np
import zmq


def main() -> None:
    port = int(sys.argv[1])
    width, height, fps = (int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (320, 240, 30.0)
    socket = zmq.Context().socket(zmq.PUB)
    socket.bind(f"tcp://127.0.0.1:{port}")
    frame_index = 0
    deadline = time.monotonic() + 600  # a test never needs it longer
    while time.monotonic() < deadline:
        image = np.full((height, width, 3), 96, dtype=np.uint8)
        column = frame_index % (width - 16)
        image[:, column:column + 16] = 255
        ok, jpeg = cv2.imencode(".jpg", image)
        assert ok
        socket.send_string(json.dumps({"timestamps": {"standin": time.time()}, "images": {"standin": base64.b64encode(jpeg.tobytes()).decode()}}))
        frame_index += 1
        time.sleep(1 / fps)


if __name__ == "__main__":
    main()
