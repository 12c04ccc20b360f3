"""``python -m fleet SOURCES... --out DIR ...``: the same as ``driving-detect batch``."""
import sys

if __name__ == "__main__":
    from commands.batch import main

    sys.exit(main(prog="python -m fleet"))
