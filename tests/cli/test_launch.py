"""`python -m tfkd.launch`: two MultiWorkerMirroredStrategy workers over loopback train like one process."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfkd  # noqa: F401
from tests.cli.test_train import ROOT, common, run_train
from tfkd.cli.launch import flag_value, tf_configs
from tfkd.models import load_model_dir


def test_tf_configs_name_every_worker_and_make_worker_0_the_chief():
    configs = [json.loads(c) for c in tf_configs([1111, 2222])]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]
    assert all(c["cluster"] == {"worker": ["localhost:1111", "localhost:2222"]} for c in configs)
    assert flag_value(["--workdir=a", "--x=1", "--workdir=b"], "workdir") == "b"


def test_launcher_refuses_a_strategy_flag_and_a_missing_workdir():
    for args in (["--", "--workdir=w", "--strategy=mirrored"], ["--", "--epochs=1"]):
        result = subprocess.run([sys.executable, "-m", "tfkd.launch", "--workers=2", *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0
        assert "--strategy" in result.stderr or "--workdir" in result.stderr


@pytest.mark.slow
@pytest.mark.ci
def test_two_workers_train_like_one_process_and_only_the_chief_writes(tiny_setup, tmp_path):  # noqa: F811
    extra = ["--method=codir", "--codir_num_negatives=8", "--dropout=0", "--epochs=2", "--seed=3"]
    single = run_train(*common(tiny_setup, tmp_path / "one", *extra))
    assert single.returncode == 0, single.stderr[-3000:]

    workdir = tmp_path / "two"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    launched = subprocess.run([sys.executable, "-m", "tfkd.launch", "--workers=2", "--", *common(tiny_setup, workdir, *extra)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    worker_log = workdir / "launch" / "worker-1.log"
    assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-2000:] + (
        worker_log.read_text()[-3000:] if worker_log.exists() else "")

    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((workdir / "results.json").read_text())
    assert [h["accuracy"] for h in two["dev_history"]] == [h["accuracy"] for h in one["dev_history"]]
    model_one, _, _ = load_model_dir(str(tmp_path / "one" / "model"))
    model_two, _, _ = load_model_dir(str(workdir / "model"))
    for a, b in zip(model_one.weights, model_two.weights):
        a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        # Same global batch: the replicas' summed gradients equal the single-process ones up to float32 rounding.
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)

    # The chief alone wrote the run; worker 1's scratch copy is gone, its log kept.
    assert any(name.startswith("ckpt-") for name in os.listdir(workdir / "checkpoints"))
    assert sorted(os.listdir(workdir / "launch")) == ["worker-1.log"]
    assert "worker 1: the chief writes" in worker_log.read_text()
