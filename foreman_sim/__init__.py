"""The simulated nut station: physics and failure modes (`station`), its cameras (`render`), the
scripted expert that reads its ground truth (`expert`) and the scripted supervisor that drives a sim
robot through the server's teleop path as a person would (`supervisor`).

Its own package because three users need it and only one of them is the robot agent: the agent
drives it (robot_agent/sim_robot.py adapts it to the agent's Robot interface and runs the
supervisor in the sim agent's process), foreman_learning trains and evaluates in it, and the server's
retraining task replays recorded episodes in it. It depends on numpy only (the supervisor also on
websockets) and imports no other Foreman package: the world does not know who acts in it.
"""
