"""The simulated nut station: physics and failure modes (`station`), its cameras and what a policy
observes (`render`), the scripted expert that reads its ground truth (`expert`) and the scripted
supervisor that drives a sim robot through the server's teleop path as a person would (`supervisor`).

Its own package because three users need it and only one of them is the robot agent: the agent
drives it (robot_agent/sim_robot.py adapts it to the agent's Robot interface; with
--sim-supervisor-token the agent also runs the supervisor), foreman_learning trains and evaluates in
it (its in-process round applies the supervisor's rules without the server), and the server's
retraining task replays recorded episodes in it. The supervisor is here, not in robot_agent, because
it is the simulator's stand-in for a person: it reads ground truth and only duck-types the agent it
rides in. numpy only (the supervisor also websockets); no other Foreman package is imported: the
world does not know who acts in it.
"""
