"""`python -m tfkd.evaluate`: runs `tfkd.cli.evaluate` (the command lives there)."""

from absl import flags

from tfkd.cli import evaluate

# `--help` lists the key flags of the module run as __main__: make the command's flags ours.
flags.adopt_module_key_flags(evaluate)
evaluate.run()
