"""Experiment trackers: callbacks that log a run as it trains (``wae run --track NAME``)."""
