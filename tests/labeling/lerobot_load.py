"""Runs in LeRobot's own environment (scripts/lerobot_env.sh): load a Foreman export with LeRobot
0.4.4's `LeRobotDataset` and report what it read, as JSON on stdout.

python lerobot_load.py DATASET_ROOT CHUNK

- every frame through `dataset[i]` (torchcodec decoding each camera's frame at its timestamp);
- per episode, the frames read and each camera's frames in its video file;
- Foreman's per-row columns as the loader returns them (control_source, lease_index, sample_weight);
- one shuffled DataLoader batch with `delta_timestamps` over an action chunk of CHUNK rows.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
from torchcodec.decoders import VideoDecoder


def main() -> None:
    root, chunk = Path(sys.argv[1]), int(sys.argv[2])
    meta = LeRobotDatasetMetadata("foreman/export", root=root)
    dataset = LeRobotDataset("foreman/export", root=root, video_backend="torchcodec")
    cameras = list(meta.video_keys)
    frames_per_episode: Counter[int] = Counter()
    images: dict[str, list[int]] = {}
    columns: dict[str, list[float]] = {"control_source": [], "lease_index": [], "sample_weight": []}
    value_range = [1.0, 0.0]
    for index in range(len(dataset)):
        item = dataset[index]
        frames_per_episode[int(item["episode_index"])] += 1
        for camera in cameras:
            image = item[camera]
            images.setdefault(camera, list(image.shape))
            value_range = [min(value_range[0], float(image.min())), max(value_range[1], float(image.max()))]
        for name in columns:
            columns[name].append(float(item[name]))
    video_frames = {}
    for episode in range(meta.total_episodes):
        video_frames[episode] = {camera: len(VideoDecoder(str(root / meta.get_video_file_path(episode, camera)))) for camera in cameras}

    fps = meta.fps
    chunked = LeRobotDataset("foreman/export", root=root, video_backend="torchcodec",
                             delta_timestamps={"action": [k / fps for k in range(chunk)]})
    loader = torch.utils.data.DataLoader(chunked, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    batch = next(iter(loader))
    print(json.dumps({
        "len": len(dataset), "total_frames": meta.total_frames, "cameras": cameras, "image_shapes": images,
        "value_range": value_range, "frames_per_episode": {str(k): v for k, v in sorted(frames_per_episode.items())},
        "video_frames": {str(k): v for k, v in video_frames.items()},
        "lengths": {str(e): int(meta.episodes[e]["length"]) for e in range(meta.total_episodes)},
        "columns": columns, "batch_action": list(batch["action"].shape), "batch_pad": list(batch["action_is_pad"].shape),
        "task": batch["task"][0],
    }))


if __name__ == "__main__":
    main()
