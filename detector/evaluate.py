"""``python -m detector.evaluate``: kept for scripts that use it; the same as ``driving-detect evaluate``.

Nothing lives here: the command is `commands/evaluate.py`. Its import runs only as a script, so this layer imports
nothing from the commands layer.
"""
import sys

if __name__ == "__main__":
    from commands.evaluate import main

    sys.exit(main())
