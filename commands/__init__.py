"""The commands layer: one module per command, argument parsing only; the work is done by the layers below.

`commands.main` is the ``driving-detect SUBCOMMAND`` entry point; ``python run_stream.py`` and the older
``python -m detector.evaluate`` style forms are thin shims onto the same modules.
"""
