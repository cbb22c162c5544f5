"""`python -m tfkd.export --workdir=<tfkd.train workdir> --export_dir=<serving root> [--validate]`:
runs `tfkd.cli.export` (the command and its flags live there)."""

from absl import flags

from tfkd.cli import export

# `--help` lists the key flags of the module run as __main__: make the command's flags ours.
flags.adopt_module_key_flags(export)
export.run()
