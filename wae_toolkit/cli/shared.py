"""What the ``wae`` entry point knows of this invocation, shared by the command modules.

``verbose``: show full tracebacks (``--verbose``, ``-v`` or ``WAE_VERBOSE``); ``argv``: the
arguments ``wae`` was given (``wae run --nproc N`` starts the same command under torchrun).
"""

from __future__ import annotations

from typing import Any

STATE: dict[str, Any] = {"verbose": False, "argv": []}
