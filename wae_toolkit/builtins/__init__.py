"""wae-toolkit's first-party plugins.

They are found through the entry points in wae-toolkit's ``pyproject.toml``, like any third-party
plugin; nothing in the core imports this package directly.
"""
