"""python -m foreman_learning.train — behaviour cloning of the sim's scripted expert.

1. Collect demonstrations: the expert drives the station while a slowly varying noise (DART-style)
   is added to the velocities it executes, so the data also shows how to recover from small errors;
   the labels are always the expert's own (clean) commands.
2. Train the visuomotor policy (foreman_learning/policies/visuomotor.py) to predict each arm's next
   `horizon` actions from its wrist image and proprioception; every ensemble head sees its own
   bootstrap of the data.
3. Calibrate the confidence scale on held-out demonstration states, and save the checkpoint.

The same `fit(...)` fine-tunes a policy on any per-arm samples with weights (the retraining round).
Everything is seeded: the same arguments give the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from foreman_learning.policies.visuomotor import (
    ARM_ACTION_DIM,
    DEFAULT_WEIGHTS,
    PolicyConfig,
    VisuomotorNet,
    VisuomotorPolicy,
    action_to_arm_actions,
    arm_inputs,
    save_checkpoint,
    scale_for_median_confidence,
)
from foreman_sim.expert import Expert
from foreman_sim.render import policy_image
from foreman_sim.station import ARMS, NutStation

# Near the part and the feeder the noise is scaled down: millimetres decide a grasp or an engagement
# there, and a demonstration that fails early never shows the later steps of the cycle.
NEAR_SURFACE_NOISE = 0.1
DEFAULT_NOISE = 0.006  # m/s of DART noise on executed velocities


@dataclass
class Samples:
    """Per-arm training samples: images uint8 (N, 1, P, P), states (N, 10), chunks (N, H, 5), weights (N,)."""

    images: np.ndarray
    states: np.ndarray
    chunks: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.states)

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        return Samples(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("images", "states", "chunks", "weights")))


def chunk_labels(actions: np.ndarray, horizon: int) -> np.ndarray:
    """(T, 10) station actions → (T, 2, horizon, 5) per-arm chunks (the last action repeats past the end)."""
    padded = np.concatenate([actions, np.repeat(actions[-1:], horizon, axis=0)])
    windows = np.stack([padded[t: t + horizon] for t in range(len(actions))])  # (T, H, 10)
    arm = np.stack([action_to_arm_actions(w) for w in windows])  # (T, 2, H, 5)
    return arm


def samples_from_steps(images: list[np.ndarray], states: list[np.ndarray], actions: np.ndarray, keep: list[int],
                       horizon: int, weights: np.ndarray | None = None) -> Samples:
    """Per-arm samples at the kept steps of one episode (images/states per kept step, actions for every step).
    `weights`: per step (T,) or per step and arm (T, 2)."""
    chunks = chunk_labels(actions, horizon)[keep]  # (K, 2, H, 5)
    step_weights = np.ones(len(actions), dtype=np.float32) if weights is None else weights.astype(np.float32)
    if step_weights.ndim == 1:
        step_weights = np.repeat(step_weights[:, None], 2, axis=1)
    return Samples(
        images=(np.concatenate(images) * 255).round().astype(np.uint8),
        states=np.concatenate(states),
        chunks=chunks.reshape(-1, horizon, ARM_ACTION_DIM).astype(np.float32),
        weights=step_weights[keep].reshape(-1),
    )


def collect_demonstrations(episodes: int, seed: int, *, horizon: int = 15, every: int = 2, noise: float = DEFAULT_NOISE,
                           progress: Callable[[int, int], None] | None = None) -> Samples:
    """Expert demonstrations with DART noise on the executed velocities; labels are clean."""
    parts: list[Samples] = []
    for episode in range(episodes):
        station = NutStation(seed + episode)
        rng = np.random.default_rng(10_000_019 + seed + episode)
        drift = np.zeros(len(ARMS) * 3)
        images, states, actions, keep = [], [], [], []
        while not station.outcome.done:
            action = Expert.action(station)
            if station.steps % every == 0:
                arm_images, arm_states = arm_inputs(station.state_vector(), {f"wrist_{s}": policy_image(station, s) for s in ARMS})
                images.append(arm_images)
                states.append(arm_states)
                keep.append(station.steps)
            actions.append(action)
            drift = 0.9 * drift + rng.normal(0.0, noise, drift.shape)
            executed = action.copy()
            for index in range(len(ARMS)):
                arm = station.arms[ARMS[index]]
                if arm.nut is None or arm.nut.state != "threading":  # threading arms are held by the thread
                    executed[5 * index: 5 * index + 3] += drift[3 * index: 3 * index + 3] * (NEAR_SURFACE_NOISE if arm.position[2] < 0.03 else 1.0)
            station.step(executed)
        parts.append(samples_from_steps(images, states, np.asarray(actions), keep, horizon))
        if progress is not None:
            progress(episode + 1, episodes)
    return Samples.concat(parts)


def fit(net: VisuomotorNet, samples: Samples, *, epochs: int, seed: int, batch_size: int = 256, lr: float = 1e-3,
        progress: Callable[[int, int, float], None] | None = None) -> list[float]:
    """Train (or fine-tune) `net` on weighted per-arm samples. Returns the loss per epoch."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    heads = net.config.heads
    # Bootstrap: each head sees each sample with probability 0.8 (diversity → meaningful disagreement).
    masks = torch.bernoulli(torch.full((len(samples), heads), 0.8), generator=generator)
    images = torch.from_numpy(samples.images)
    states = torch.from_numpy(samples.states)
    chunks = torch.from_numpy(samples.chunks)
    weights = torch.from_numpy(samples.weights.astype(np.float32))
    weights = weights / weights.mean()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(samples) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    losses: list[float] = []
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(samples), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch_size: (step + 1) * batch_size]
            predicted = net(images[index].float() / 255.0, states[index])  # (B, heads, H, 5)
            error = ((predicted - chunks[index][:, None]) ** 2).mean(dim=(2, 3))  # (B, heads)
            mask = masks[index]
            loss = (error * mask * weights[index][:, None]).sum() / mask.sum().clamp(min=1.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        losses.append(total / steps_per_epoch)
        if progress is not None:
            progress(epoch + 1, epochs, losses[-1])
    net.eval()
    return losses


def calibrate_confidence(net: VisuomotorNet, samples: Samples, median_confidence: float = 0.97) -> float:
    """Set the confidence scale so a typical demonstration state is confident; rare states are not."""
    policy = VisuomotorPolicy(net)
    spreads = []
    for start in range(0, len(samples), 2048):
        with torch.inference_mode():
            out = net(torch.from_numpy(samples.images[start: start + 2048]).float() / 255.0,
                      torch.from_numpy(samples.states[start: start + 2048])).numpy()
        spreads.append(out[:, :, : policy.config.confidence_steps, :3].std(axis=1).mean(axis=(1, 2)))
    scale = scale_for_median_confidence(np.concatenate(spreads), median_confidence)
    net.config.confidence_scale = scale
    return scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m foreman_learning.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=34, help="expert demonstrations (default 34)")
    parser.add_argument("--epochs", type=int, default=24, help="passes over the data (default 24: trained to convergence)")
    parser.add_argument("--seed", type=int, default=0, help="first demonstration seed; evaluation seeds start at 1000")
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE, help="DART noise on executed velocities, m/s (default 0.006)")
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS), help=f"checkpoint to write (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--version", default="bc-sim-v2", help="policy version name stored in the checkpoint")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    if args.seed + args.episodes > 1000:
        parser.error("demonstration seeds must stay below 1000 (evaluation uses 1000 and up)")
    torch.set_num_threads(max(1, args.threads))
    started = time.monotonic()

    def collected(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"  demonstrations {done}/{total}", file=sys.stderr, flush=True)

    samples = collect_demonstrations(args.episodes, args.seed, noise=args.noise, progress=collected)
    collect_s = time.monotonic() - started
    print(f"collected {len(samples)} per-arm samples from {args.episodes} episodes in {collect_s:.0f} s", flush=True)
    config = PolicyConfig(version=args.version)
    torch.manual_seed(args.seed)
    net = VisuomotorNet(config)

    def trained(epoch: int, epochs: int, loss: float) -> None:
        print(f"  epoch {epoch}/{epochs}  loss {loss:.4f}  ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    losses = fit(net, samples, epochs=args.epochs, seed=args.seed, progress=trained)
    scale = calibrate_confidence(net, samples)
    config.trained = {"episodes": args.episodes, "epochs": args.epochs, "seed": args.seed, "noise": args.noise,
                      "samples": len(samples), "final_loss": round(losses[-1], 5), "wall_s": round(time.monotonic() - started, 1)}
    path = save_checkpoint(net, args.out)
    print(f"saved {path} ({path.stat().st_size / 1e6:.1f} MB); confidence scale {scale:.4f}")
    print(json.dumps({"checkpoint": str(path), "losses": [round(x, 5) for x in losses], **config.trained}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
