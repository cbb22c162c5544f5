"""The commands: each a thin adapter from absl flags to a run configuration and a library call.

`python -m tfkd.<command>` (train, pretrain, evaluate, export, report, bench,
launch) runs `tfkd.cli.<command>.run`.
"""
