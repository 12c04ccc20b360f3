"""The commands layer: one module per command, argument parsing only; the work is done by the layers below.

`commands.main` is the ``driving-detect SUBCOMMAND`` entry point, the one way in; ``python run_stream.py`` is kept
as the script form of ``driving-detect stream`` (tests and `bench/resolution_sweep.py` run it as a process).
"""
