"""``python -m detector.tune``: kept for scripts that use it; the same as ``driving-detect tune``.

Nothing lives here: the command is `commands/tune.py`. Its import runs only as a script, so this layer imports
nothing from the commands layer.
"""
import sys

if __name__ == "__main__":
    from commands.tune import main

    sys.exit(main())
