"""`python -m tfkd.export --workdir=<tfkd.train workdir> --export_dir=<serving root> [--validate]`.

Exports a distilled student as a TF Serving SavedModel and TFLite models;
the flags below are defined in `tfkd.export.cli`.
"""

from absl import flags

from tfkd.export import cli

# `--help` lists the key flags of the module run as __main__: make cli's flags ours.
flags.adopt_module_key_flags(cli)
cli.run()
