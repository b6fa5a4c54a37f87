"""The recorded-episode format, the one place it is defined (docs/labeling.md points here).

An episode, as the agent spools and uploads it (POST /api/robot/episodes/{id}/upload), is:

- `metadata.json`: an EpisodeMetadata (the recorder builds it, the server validates it);
- `steps.parquet`: one row per control step with the columns of STEP_SCHEMA;
- one H.264 mp4 per camera in `metadata.cameras`.

Every reader and writer — the agent's recorder and uploader, the server's upload endpoint, upload
processing, the dataset exports, the retraining round and foreman_learning's in-process round —
takes the names, types, action modes and the pre-intervention length from here (they once
differed: 90 pre-intervention steps in one place, 15 in another).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final, Literal, get_args

import pyarrow as pa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from foreman_protocol.messages import FailureMode, Outcome, RobotFeatures

METADATA_FILE: Final = "metadata.json"
STEPS_FILE: Final = "steps.parquet"

# Who drove each step. `pre_intervention` is the robot's own driving just before it asked for help
# or a person took over (as Sirius marks it): kept for training, but down-weighted.
ActionMode = Literal["robot", "pre_intervention", "human", "shared"]
ACTION_MODES: Final[tuple[ActionMode, ...]] = get_args(ActionMode)  # this order is the export's action_mode index
HUMAN_ACTION_MODES: Final[tuple[ActionMode, ...]] = ("human", "shared")  # a person drove
PRE_INTERVENTION_STEPS: Final = 15  # the robot's last steps before an intervention (as Sirius)

MAX_STEPS: Final = 200_000  # 900 s at 30 Hz is 27,000; anything near this is not an agent's recording

# The step table. Explicit types: a cycle a person drove from start to end has no confidence at
# all, and a column of only nulls must still be a float column.
STEP_SCHEMA: Final = pa.schema([
    ("t", pa.float64()),  # seconds since the cycle started, never going back
    ("phase", pa.string()),
    ("mode", pa.string()),  # the robot's mode (autonomous, teleop, ...)
    ("action_mode", pa.string()),  # one of ACTION_MODES
    ("progress", pa.float64()),
    ("confidence", pa.float64()),  # null while a person drives
    ("torque_nm", pa.float64()),
    ("state", pa.list_(pa.float32())),
    ("action", pa.list_(pa.float32())),
    ("lease_id", pa.string()),  # the lease a person drove the step under (teleop, shared); null: nobody
])
# Columns an older agent's table may lack: read as all null.
OPTIONAL_STEP_COLUMNS: Final = frozenset({"lease_id"})

# Who held control at a step, from its `mode` (a dataset's control_source): the policy, a person
# (teleop), both (shared), or nobody (paused, a protective hold, e-stopped).
ControlSource = Literal["policy", "person", "shared", "none"]
CONTROL_SOURCES: Final[tuple[ControlSource, ...]] = get_args(ControlSource)  # this order is the export's control_source index
CONTROL_SOURCE_OF_MODE: Final[dict[str, ControlSource]] = {"autonomous": "policy", "teleop": "person", "shared": "shared"}

# Camera names become file names on both sides: nothing that could be a path.
CameraName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]


class EpisodeMetadata(BaseModel):
    """metadata.json. Strict like the protocol's messages: an unknown key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    episode: uuid.UUID
    cycle_index: Annotated[int, Field(ge=0)]
    policy_version: Annotated[str, Field(max_length=200)]
    seed: int | None  # the sim's seed (replay needs it); None on a real robot
    started_at: AwareDatetime
    duration_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    outcome: Outcome
    failure_mode: FailureMode | None
    intervened: bool
    fps: Annotated[float, Field(gt=0.0, le=120.0, allow_inf_nan=False)]  # the videos' frame rate
    cameras: Annotated[list[CameraName], Field(max_length=16)]  # cameras with a video (an empty one is left out)
    steps: Annotated[int, Field(ge=0, le=MAX_STEPS)]  # rows in steps.parquet
    # What the robot declared when it recorded this (hello.features): the step table's state and
    # action columns in this order. Absent from agents older than the declaration.
    robot_type: Annotated[str, Field(max_length=200)] = ""
    features: RobotFeatures | None = None

    @model_validator(mode="after")
    def _failure_mode_declared(self) -> EpisodeMetadata:
        if self.failure_mode is not None and self.features is not None and not self.features.reports(self.failure_mode):
            raise ValueError(f"failure mode {self.failure_mode!r} is not one the robot declares")
        return self


def step_schema_problem(schema: pa.Schema) -> str | None:
    """Why a step table's schema is not STEP_SCHEMA's (a column missing or of another type), or None."""
    for field in STEP_SCHEMA:
        if field.name not in schema.names:
            if field.name in OPTIONAL_STEP_COLUMNS:
                continue
            return f"no column {field.name!r}"
        found = schema.field(field.name).type
        if not found.equals(field.type):
            return f"column {field.name!r} has type {found} (expected {field.type})"
    return None
