"""``python -m wae_toolkit`` is the ``wae`` command."""

from wae_toolkit.cli.app import main

if __name__ == "__main__":
    main()
