"""Foreman robot agent: runs a robot (or the simulated nut station) under supervision."""

__version__ = "0.1.0"
