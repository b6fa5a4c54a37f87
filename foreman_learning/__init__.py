"""Foreman's learning: the policies (one registry, `foreman_learning.policies.factory.load_policy`),
training on the simulator's expert (`python -m foreman_learning.train`), evaluation on held-out
seeds (`python -m foreman_learning.evaluate`), learning from interventions
(`python -m foreman_learning.retrain`) and replaying recorded sim episodes (`replay`: it gives back
the visuomotor network's inputs, so it lives here rather than in foreman_sim).

Its own package, beside foreman_protocol and foreman_sim, because two processes use it: the robot
agent runs a policy next to the robot, and the server's retraining task trains, evaluates and
replays — and the server imports nothing from robot_agent. It builds on foreman_sim (demonstrations
and evaluations run in the simulated station); neither foreman_sim nor this package imports
robot_agent or webapp. torch is imported only by the modules that need it, so a remote policy
(xr0://, ws://) loads without it.
"""
