"""``python run_stream.py ...``: kept for scripts and users that run it; the same as ``driving-detect stream ...``.

The command lives in `commands/stream.py`.
"""
import sys

from commands.stream import main

if __name__ == "__main__":
    sys.exit(main())
