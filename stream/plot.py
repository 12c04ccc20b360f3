"""``python -m stream.plot``: kept for scripts that use it; the same as ``driving-detect plot``.

Nothing lives here: the command is `commands/plot.py`. Its import runs only as a script, so this layer imports
nothing from the commands layer.
"""
import sys

if __name__ == "__main__":
    from commands.plot import main

    sys.exit(main())
