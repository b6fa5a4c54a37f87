"""Policies: the interface the agent drives (`base.Policy`), one factory for every policy spec
(`factory.load_policy`) and the implementations below it — the trained visuomotor network
(`visuomotor`), any TorchScript file (`torchscript`), the sim's scripted expert (`expert`) and
policies served by other processes (`remote`). Implementations import `base`, never each other or
the factory.
"""
