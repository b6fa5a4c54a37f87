"""Conventions of a recorded episode's step table (docs/labeling.md), shared by the agent's
recorder, which writes them, and foreman_learning's in-process round, which must label its own
steps the same way (they once differed: 90 steps in one, 15 in the other)."""

PRE_INTERVENTION_STEPS = 15  # the robot's last steps before an intervention are labelled pre_intervention (as Sirius)
