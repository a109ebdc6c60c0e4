"""``python -m wae_toolkit`` is the ``wae`` command."""

from wae_toolkit.cli import main

if __name__ == "__main__":
    main()
