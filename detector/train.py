"""``python -m detector.train``: kept for scripts that use it; the same as ``driving-detect train``.

Nothing lives here: the command is `commands/train.py`. Its import runs only as a script, so this layer imports
nothing from the commands layer.
"""
import sys

if __name__ == "__main__":
    from commands.train import main

    sys.exit(main())
