"""The training engine, as small parts (see docs/architecture.md):

- :mod:`~wae_toolkit.engine.setup`: everything a run needs before step 1, built once;
- :mod:`~wae_toolkit.engine.loop`: the loop (the order of events only);
- :mod:`~wae_toolkit.engine.step`: one optimisation step;
- :mod:`~wae_toolkit.engine.state`: the loop's state, saved into and restored from checkpoints;
- :mod:`~wae_toolkit.engine.callbacks`: the ``Callback`` interface every other part implements;
- :mod:`~wae_toolkit.engine.hooks`: the built-in callbacks (metrics file, held-out evaluation,
  checkpoints);
- :mod:`~wae_toolkit.engine.checkpoint`, :mod:`~wae_toolkit.engine.resume`: checkpoints and
  resuming; :mod:`~wae_toolkit.engine.faults`: signals and non-finite steps;
  :mod:`~wae_toolkit.engine.pretrain`: encoder pre-training;
  :mod:`~wae_toolkit.engine.heldout`: held-out evaluation;
  :mod:`~wae_toolkit.engine.distributed`: multi-process helpers.
"""
