"""``python -m stream.benchmark``: kept for scripts that use it; the same as ``driving-detect benchmark``.

Nothing lives here: the command is `commands/benchmark.py`. Its import runs only as a script, so this layer imports
nothing from the commands layer.
"""
import sys

if __name__ == "__main__":
    from commands.benchmark import main

    sys.exit(main())
