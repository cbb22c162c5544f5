"""Shared exports for the export tests: each run is exported once per session."""

import os

import numpy as np
import pytest
from tiny_runs import CLASSES, WORDS, TinyRuns, write_glue, write_run


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    root = str(tmp_path_factory.mktemp("export_runs"))
    vocab = os.path.join(root, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    glue_dir = os.path.join(root, "glue")
    write_glue(glue_dir, np.random.default_rng(0))
    return TinyRuns(
        root=root, vocab=vocab, glue_dir=glue_dir,
        sst2=write_run(os.path.join(root, "kd_sst2"), vocab, glue_dir, "sst2", CLASSES, 0.80, 0.82, teacher=True),
        mrpc=write_run(os.path.join(root, "kd_mrpc"), vocab, glue_dir, "mrpc", ("not_equivalent", "equivalent"),
                       0.80, 0.82, seed=3),
        # below the blessing threshold (0.50 / 0.62 = 0.81): exported with force
        stsb=write_run(os.path.join(root, "kd_stsb"), vocab, glue_dir, "stsb", (), 0.50, 0.62, seed=5),
    )


@pytest.fixture(scope="session")
def sst2_export(tiny_runs, tmp_path_factory):
    """Every artefact of the SST-2 run: SavedModel, four id-input TFLite variants and the text TFLite."""
    from tfkd.export import ExportOptions, export

    export_dir = str(tmp_path_factory.mktemp("serving"))
    return export(ExportOptions(workdir=tiny_runs.sst2, export_dir=export_dir, calibration_examples=40),
                  log=lambda message: None)


@pytest.fixture(scope="session")
def mrpc_export(tiny_runs, tmp_path_factory):
    """The sentence-pair run: SavedModel and text TFLite only."""
    from tfkd.export import ExportOptions, export

    export_dir = str(tmp_path_factory.mktemp("serving_pair"))
    return export(ExportOptions(workdir=tiny_runs.mrpc, export_dir=export_dir, quantize=(), tflite_seq_length=14),
                  log=lambda message: None)



@pytest.fixture(scope="session")
def stsb_export(tiny_runs, tmp_path_factory):
    """The regression run, not blessed and forced: SavedModel only, options given as command-line flags."""
    from tfkd.cli import export as cli
    from tfkd.export import export

    export_dir = str(tmp_path_factory.mktemp("serving_regression"))
    cli.FLAGS(["tfkd-export", f"--workdir={tiny_runs.stsb}", f"--export_dir={export_dir}", "--quantize=",
               "--notext_tflite", "--force"])
    try:
        options = cli.options_from_flags()
    finally:
        cli.FLAGS.unparse_flags()
    return export(options, log=lambda message: None)
