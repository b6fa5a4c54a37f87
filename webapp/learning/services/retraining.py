"""Retraining rounds: fine-tune a sim policy on a labeled export, evaluate it on held-out seeds,
register the result as a new PolicyVersion (which the rollout page can then canary and promote).

Data: the export chooses the episodes and carries their labels; the round reads each episode's
full-rate step table (30 Hz, kept with its upload — an export's rows are at the video frame rate)
and replays it on the episode's seed to get back the 32×32 wrist images the policy saw
(foreman_learning/replay.py). Weights, Sirius-style (foreman_learning/retrain.py): the person's steps carry
a fixed share of the total, the robot's steps just before a takeover are down-weighted, an arm the
person was not driving teaches nothing; a recovery the labeler marked "not a good demonstration"
is left out. Expert demonstrations from the base policy's own training seeds are mixed in
(rehearsal), so the fine-tune does not forget what the failures never show.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from foreman_protocol.episodes import HUMAN_ACTION_MODES, METADATA_FILE, STEPS_FILE, EpisodeMetadata
from webapp.fleet.models import Episode, PolicyVersion
from webapp.fleet.roles import user_can
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, Forbidden, Invalid, NotFound
from webapp.labeling.models import Clip, Export, Label
from webapp.learning.models import RetrainingRound
from webapp.learning.services.policies import POLICY_NAME, policy_register

log = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    "epochs": 4,  # fine-tuning passes
    # Expert demonstrations mixed in, from the base's own training seeds; None: its whole set, as its
    # checkpoint records it (measured in process: with fewer the fine-tune often unlearned other phases).
    "rehearsal_episodes": None,
    # 1: also fine-tune a twin on the rehearsal alone, same passes and seed, and evaluate it — what
    # the round's episodes added beyond more training on the base's own data.
    "control": 0,
    "eval_episodes": 100,  # held-out seeds for before/after
    "eval_seed": 1000,
    "seed": 0,
}
MAX_EPISODES = 2000


def _actor(user: Any) -> str:
    return getattr(user, "username", str(user))


def retraining_start(*, user: Any, export_id: str, base_policy: str | None = None, name: str | None = None,
                     options: dict[str, Any] | None = None, source: str = "") -> RetrainingRound:
    """Queue a round on a finished export's episodes; the Celery task `learning.run_retraining` does the work."""
    if not user_can(user, "rollout"):
        raise Forbidden("your role may not retrain policies (rollout)")
    export = Export.objects.filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"no export {export_id}")
    if export.state != Export.State.DONE:
        raise Conflict(f"export {export_id} is {export.state}: wait until it is done")
    episodes = list(Episode.objects.filter(id__in=export.episodes).values_list("policy_version", flat=True))
    if not episodes:
        raise Invalid("the export's episodes are gone")
    if len(episodes) > MAX_EPISODES:
        raise Invalid(f"more than {MAX_EPISODES} episodes: export fewer")
    versions = Counter(v for v in episodes if v)
    base = base_policy or (versions.most_common(1)[0][0] if versions else None)
    policy = PolicyVersion.objects.filter(name=base or "").first()
    if policy is None or not policy.checkpoint:
        raise NotFound(f"base policy {base!r} has no registered checkpoint to fine-tune")
    chosen = {**DEFAULT_OPTIONS, **{k: v for k, v in (options or {}).items() if k in DEFAULT_OPTIONS}}
    for key, value in chosen.items():
        if value is None and DEFAULT_OPTIONS[key] is None:
            continue  # the default that depends on the base
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Invalid(f"option {key} must be a whole number ≥ 0")
    if not 1 <= chosen["epochs"] <= 50 or not 1 <= chosen["eval_episodes"] <= 1000 or (chosen["rehearsal_episodes"] or 0) > 500:
        raise Invalid("epochs 1–50, eval_episodes 1–1000, rehearsal_episodes ≤ 500")
    if chosen["control"] not in (0, 1) or (chosen["control"] and chosen["rehearsal_episodes"] == 0):
        raise Invalid("control is 0 or 1, and a control needs rehearsal episodes to train on")
    if chosen["eval_seed"] < 1000:
        raise Invalid("eval_seed must be 1000 or more: seeds below are training seeds, not held out")
    new_name = name or _next_name(policy.name)
    if not POLICY_NAME.match(new_name):
        raise Invalid(f"bad policy name {new_name!r}: letters, digits, '.', '_' and '-' only")
    if PolicyVersion.objects.filter(name=new_name).exists():
        raise Conflict(f"policy {new_name} already exists: choose another name")
    with transaction.atomic():
        round_ = RetrainingRound.objects.create(base_policy=policy.name, episode_ids=list(export.episodes),
                                                options={**chosen, "export": str(export.id), "name": new_name},
                                                created_by=user if getattr(user, "pk", None) else None)
        audit_record(actor=_actor(user), action="retraining_started", robot=None, source=source, round=str(round_.id),
                     base=policy.name, name=new_name, export=str(export.id), episodes=len(export.episodes))
        from webapp.learning.tasks import run_retraining

        transaction.on_commit(lambda: run_retraining.delay(str(round_.id)))
    return round_


def _next_name(base: str) -> str:
    """bc-sim-v1 → bc-sim-v1-r1, then -r2 … (the first free one)."""
    stem = base
    for index in range(1, 1000):
        candidate = f"{stem}-r{index}"
        if not PolicyVersion.objects.filter(name=candidate).exists():
            return candidate
    raise Conflict(f"no free name after {base}")


def _progress(round_: RetrainingRound, fraction: float, stage: str) -> None:
    RetrainingRound.objects.filter(pk=round_.pk).update(progress=round(min(0.99, max(0.0, fraction)), 3), stage=stage[:100])


def episode_training_data(episode_id: str) -> tuple[Any, str]:
    """One exported episode as a foreman_learning.retrain.SupervisedEpisode (replayed on its seed), or why not."""
    from foreman_learning.replay import ReplayMismatch, replay
    from foreman_learning.retrain import SupervisedEpisode

    clip = Clip.objects.select_related("upload", "episode").filter(episode_id=episode_id).first()
    if clip is None:
        return None, "no clip"
    directory = Path(settings.MEDIA_ROOT) / clip.upload.directory
    try:
        seed = EpisodeMetadata.model_validate_json((directory / METADATA_FILE).read_text()).seed
        steps = pq.read_table(directory / STEPS_FILE, columns=["action", "action_mode", "state"])
    except (OSError, ValueError) as error:  # a pydantic ValidationError is a ValueError
        return None, f"unreadable upload: {error}"
    if seed is None:
        return None, "no sim seed (not a simulated episode)"
    actions = np.asarray(steps.column("action").to_pylist(), dtype=np.float32)
    states = np.asarray(steps.column("state").to_pylist(), dtype=np.float32)
    modes = [str(m) for m in steps.column("action_mode").to_pylist()]
    try:
        replayed = replay(seed, actions, states)
    except ReplayMismatch as error:
        return None, f"does not replay: {error}"
    label = Label.objects.filter(episode_id=episode_id, current=True).first()
    if label is not None and label.good_demo is False:  # the labeler says the recovery is not worth imitating
        modes = ["robot" if m == "robot" else "excluded" for m in modes]
    human = [i for i, m in enumerate(modes) if m in HUMAN_ACTION_MODES]
    intervened_at = human[0] if human else None
    episode = clip.episode
    return SupervisedEpisode(
        seed=seed, success=episode.outcome == Episode.Outcome.SUCCESS, failure_mode=episode.failure_mode or None,
        intervened_at=intervened_at, trigger=None, action_modes=modes, actions=list(actions.astype(np.float64)),
        images=replayed.images, states=replayed.states, kept=replayed.kept,
    ), ""


def retraining_run(round_id: str) -> RetrainingRound:
    """Fine-tune, evaluate before/after on held-out seeds, register the new PolicyVersion. Never raises:
    a failed round says why."""
    round_ = RetrainingRound.objects.get(pk=round_id)
    if round_.state in (RetrainingRound.State.DONE, RetrainingRound.State.RUNNING):
        return round_
    round_.state, round_.progress, round_.stage = RetrainingRound.State.RUNNING, 0.0, "reading episodes"
    round_.save(update_fields=["state", "progress", "stage"])
    started = time.monotonic()
    try:
        report = _run(round_)
    except Exception as error:  # noqa: BLE001 - the round fails with a reason; the worker carries on
        log.error("retraining round %s failed:\n%s", round_id, traceback.format_exc())
        round_.state, round_.error = RetrainingRound.State.FAILED, f"{type(error).__name__}: {error}"[:2000]
    else:
        round_.state, round_.progress, round_.stage, round_.report = RetrainingRound.State.DONE, 1.0, "done", report
        round_.result = PolicyVersion.objects.filter(name=report["policy_after"]).first()
    round_.report = {**round_.report, "wall_s": round(time.monotonic() - started, 1)}
    round_.finished_at = timezone.now()
    round_.save()
    audit_record(actor="system", action="retraining_finished", robot=None, round=str(round_.id), state=round_.state,
                 policy=round_.report.get("policy_after"), success_before=round_.report.get("success_before"),
                 success_after=round_.report.get("success_after"), error=round_.error or None)
    return round_


def _run(round_: RetrainingRound) -> dict[str, Any]:
    import torch

    from foreman_learning.evaluate import run_episodes, summarize
    from foreman_learning.policies.visuomotor import load_visuomotor, save_checkpoint
    from foreman_learning.retrain import rehearsal_count, rehearsal_demonstrations, retrain, round_samples
    from foreman_learning.train import Samples

    options = {**DEFAULT_OPTIONS, **round_.options}
    torch.set_num_threads(max(1, int(getattr(settings, "FOREMAN_TRAIN_THREADS", 2))))
    base = PolicyVersion.objects.get(name=round_.base_policy)
    policy = load_visuomotor(Path(settings.MEDIA_ROOT) / base.checkpoint)

    episodes, skipped = [], {}
    for index, episode_id in enumerate(round_.episode_ids):
        data, reason = episode_training_data(str(episode_id))
        if data is None:
            skipped[str(episode_id)] = reason
        else:
            episodes.append(data)
        _progress(round_, 0.15 * (index + 1) / len(round_.episode_ids), f"replayed {index + 1} of {len(round_.episode_ids)} episodes")
    if not episodes:
        raise ValueError(f"no episode could be used ({len(skipped)} skipped, e.g. {next(iter(skipped.values()), '')})")
    samples, counts = round_samples(episodes, policy.config.horizon)
    rehearsal = None
    if options["rehearsal_episodes"] != 0:
        _progress(round_, 0.18, f"rehearsal: {rehearsal_count(policy, options['rehearsal_episodes'])} expert demonstrations")
        rehearsal = rehearsal_demonstrations(policy, options["rehearsal_episodes"])
        samples = Samples.concat([samples, rehearsal])
    epochs = options["epochs"]
    control = bool(options["control"]) and rehearsal is not None
    share = 0.35 if control else 0.45  # of the progress bar for each fine-tune

    def trained(epoch: int, total: int, loss: float) -> None:
        _progress(round_, 0.25 + share * epoch / total, f"epoch {epoch} of {total}, loss {loss:.4f}")

    new = retrain(policy, samples, epochs=epochs, seed=options["seed"], version=options["name"], progress=trained)
    twin = None
    if control and rehearsal is not None:
        def trained_control(epoch: int, total: int, loss: float) -> None:
            _progress(round_, 0.25 + share + share * epoch / total, f"control (rehearsal only): epoch {epoch} of {total}, loss {loss:.4f}")

        twin = retrain(policy, rehearsal, epochs=epochs, seed=options["seed"], version=f"{options['name']}-control", progress=trained_control)
    seeds = list(range(options["eval_seed"], options["eval_seed"] + options["eval_episodes"]))
    _progress(round_, 0.72 if not control else 0.95, f"evaluating {base.name} on {len(seeds)} held-out seeds")
    before = summarize(run_episodes(policy, seeds))
    _progress(round_, 0.85 if not control else 0.96, f"evaluating {options['name']} on {len(seeds)} held-out seeds")
    after = summarize(run_episodes(new, seeds))
    control_result = None
    if twin is not None:
        _progress(round_, 0.98, f"evaluating the control on {len(seeds)} held-out seeds")
        control_result = summarize(run_episodes(twin, seeds))
    with tempfile.TemporaryDirectory(prefix="foreman-retrain-") as work:
        checkpoint = save_checkpoint(new.net, Path(work) / f"{options['name']}.pt")
        evaluation = {**after, "eval_seed": options["eval_seed"], "base": base.name, "base_success_rate": before["success_rate"]}
        policy_register(name=options["name"], checkpoint=checkpoint, parent=base.name, evaluation=evaluation,
                        notes=f"retrained on export {options.get('export')} ({len(episodes)} episodes)", actor="retraining")
    interventions = sum(1 for e in episodes if e.intervened_at is not None)
    return {
        "policy_before": base.name, "policy_after": options["name"],
        "success_before": before["success_rate"], "success_after": after["success_rate"],
        "cycle_s_before": before["mean_cycle_s"], "cycle_s_after": after["mean_cycle_s"],
        "failure_modes_before": before["failure_modes"], "failure_modes_after": after["failure_modes"],
        "episodes_used": len(episodes), "interventions_used": interventions, "episodes_skipped": skipped,
        "steps": counts, "samples": len(samples), "eval_episodes": len(seeds),
        "rehearsal_episodes": rehearsal_count(policy, options["rehearsal_episodes"]) if rehearsal is not None else 0,
        **({"success_control": control_result["success_rate"], "cycle_s_control": control_result["mean_cycle_s"],
            "failure_modes_control": control_result["failure_modes"]} if control_result is not None else {}),
    }


def retraining_sources(limit: int = 20) -> list[dict[str, Any]]:
    """Finished LeRobot v3 exports, newest first: what a round can be started on."""
    exports = Export.objects.filter(state=Export.State.DONE, format=Export.Format.LEROBOT_V3).select_related("created_by")
    return [{"id": str(e.id), "episodes": len(e.episodes), "created_by": e.created_by.username,
             "created_at": e.created_at.isoformat()}
            for e in exports.order_by("-created_at")[:limit]]


def retraining_dict(round_: RetrainingRound) -> dict[str, Any]:
    return {
        "id": str(round_.id), "base_policy": round_.base_policy, "name": round_.options.get("name"),
        "export": round_.options.get("export"), "episodes": len(round_.episode_ids), "state": round_.state,
        "progress": round_.progress, "stage": round_.stage, "error": round_.error or None, "report": round_.report,
        "result": round_.result.name if round_.result_id else None,
        "created_at": round_.created_at.isoformat() if round_.created_at else None,
        "finished_at": round_.finished_at.isoformat() if round_.finished_at else None,
    }
