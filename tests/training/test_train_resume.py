"""Fault tolerance of `python -m tfkd.train`, end to end in subprocesses.

A tiny CoDIR distillation (memory bank, negative sampler, dropout on, op
determinism on) is killed with SIGKILL at a random step, or preempted with
SIGTERM, then re-run with the same command; its final state must equal an
uninterrupted run's. A loss that turns NaN at a known step must stop the run
there, naming the term, with only earlier checkpoints on disk.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd  # noqa: F401
from tfkd.core.errors import EXIT_PREEMPTED
from tfkd.models import BertModel, ModelMetadata, save_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ["good", "bad", "great", "awful", "not", "movie", "the", "was", "very", "dull", "fun", "plot", "a", "film"]
STEPS_PER_EPOCH = 8  # 64 examples, batch 8
EVERY = 3  # mid-epoch checkpoints at steps 3, 6 | 9, 12, 15 | 18, 21; epoch ends at 8, 16, 24
EPOCHS = 3
STEPS = EPOCHS * STEPS_PER_EPOCH
SAVES = sorted(set(range(EVERY, STEPS, EVERY)) | set(range(STEPS_PER_EPOCH, STEPS + 1, STEPS_PER_EPOCH)))

# Test losses reached through the CLI: registered by a launcher before tfkd.train runs.
# `kill_at` kills its own process inside training step $TFKD_TEST_KILL_AT_STEP (the
# same graph runs whether it is set or not, so its runs train exactly alike);
# `nan_at` turns NaN at a given step.
LAUNCHER = """
import os
import signal
import sys
import tensorflow as tf
import tfkd

KILL_AT = int(os.environ.get("TFKD_TEST_KILL_AT_STEP", "0"))


def kill_at(step):
    if int(step) == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


class Counted(tfkd.DistillationLoss):
    def __init__(self, context, step=1, **kwargs):
        super().__init__(context, **kwargs)
        self.step = step
        self.calls = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="calls")

    def count(self, training):
        return self.calls.assign_add(1) if training else self.calls


@tfkd.register_loss("kill_at")
class KillAt(Counted):
    def call(self, teacher, student, batch, training=False):
        zero = 0.0 * tf.reduce_mean(student["logits"])
        if not training:
            return zero
        return zero + 0.0 * tf.reshape(tf.py_function(kill_at, [self.count(True)], Tout=tf.float32), [])


@tfkd.register_loss("nan_at")
class NanAt(Counted):
    def call(self, teacher, student, batch, training=False):
        return tf.where(self.count(training) == self.step, float("nan"), 0.0) + 0.0 * tf.reduce_mean(student["logits"])


from tfkd.cli.train import run

run()
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny STS-B-like regression task (continuous dev metrics) and a tiny random teacher."""
    root = tmp_path_factory.mktemp("resume")
    keras.utils.set_random_seed(0)
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    teacher = BertModel(vocabulary_size=len(WORDS) + 5, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                        num_classes=1, max_sequence_length=32, name="teacher")
    save_model_dir(str(root / "teacher"), teacher, str(vocab), ModelMetadata(task="stsb", base="", role="teacher"))
    rng = np.random.default_rng(0)
    glue = root / "glue" / "STS-B"
    glue.mkdir(parents=True)
    for split, n in (("train", 64), ("dev", 32)):
        rows = ["sentence1\tsentence2\tscore"]
        for _ in range(n):
            a, b = (" ".join(rng.choice(WORDS, size=rng.integers(3, 8))) for _ in range(2))
            overlap = len(set(a.split()) & set(b.split())) / len(set(a.split()) | set(b.split()))
            rows.append(f"{a}\t{b}\t{5 * overlap:.2f}")
        (glue / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def command(setup, workdir, *extra, losses="ce:0.5,kd:0.5,codir:0.1,kill_at:1"):
    """CoDIR's default losses plus `kill_at`, which adds nothing unless the run is told to die."""
    return [sys.executable, "-c", LAUNCHER,
        f"--workdir={workdir}", f"--teacher={setup / 'teacher'}", f"--glue_dir={setup / 'glue'}", "--task=stsb",
        "--method=codir", "--codir_num_negatives=4", "--codir_projection_dim=8", "--dropout=0.1",
        "--student_layers=1", "--student_hidden_dim=16", "--student_heads=2", "--student_intermediate_dim=32",
        "--student_init=teacher", "--max_seq_length=32", "--batch_size=8", "--eval_batch_size=32",
        f"--epochs={EPOCHS}", "--learning_rate=3e-3", "--jit_compile=false", "--deterministic", "--seed=5",
        f"--checkpoint_every_steps={EVERY}", f"--losses={losses}", *extra,
    ]


ENV = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run(cmd, timeout=600, env=ENV):
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_save(proc, step):
    """Reads the child's output until it reports the checkpoint of `step`; returns what it printed."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "saved checkpoint" in line and f" at step {step} " in line:
            return "".join(seen)
    proc.wait()
    pytest.fail(f"the run ended (status {proc.returncode}) before saving step {step}:\n" + "".join(seen)[-3000:])


def final_state(workdir):
    """Every variable of the last checkpoint: student, heads, banks, seeds, optimizer, loss means, step."""
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    assert os.path.basename(tf.train.latest_checkpoint(str(workdir / "checkpoints"))) == f"ckpt-{STEPS}"
    # save_counter counts saves (a preempted run makes one more), not training state.
    skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if name not in skip}


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    """The uninterrupted run."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    result = run(command(setup, workdir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def assert_same_training(workdir, reference):
    """Bit-identical final state and dev metrics.

    Tolerance 0: a resumed run replays the same deterministic ops (op
    determinism on, CPU) on bit-identical restored state and the same batches,
    so every float must match exactly; state left out of the checkpoint (a
    seed, a bank row, the optimizer step) shows up as differences around the
    learning rate (1e-3), far above any rounding.
    """
    resumed, expected = final_state(workdir), final_state(reference)
    assert resumed.keys() == expected.keys()
    diffs = {name: float(np.max(np.abs(resumed[name].astype(np.float64) - expected[name].astype(np.float64)), initial=0.0))
             for name in expected}
    worst = max(diffs, key=diffs.get)
    print(f"max |difference| over {len(diffs)} checkpointed variables: {diffs[worst]:.3g} ({worst})")
    assert diffs[worst] == 0.0, f"{worst} differs by {diffs[worst]}"
    got = json.loads((workdir / "results.json").read_text())
    want = json.loads((reference / "results.json").read_text())
    print("dev metrics, resumed:", got["last_dev"], "uninterrupted:", want["last_dev"])
    assert [h["epoch"] for h in got["dev_history"]] == list(range(1, EPOCHS + 1))
    for key in ("dev_history", "best_dev", "best_epoch", "last_dev"):
        assert got[key] == want[key], key


@pytest.mark.slow
@pytest.mark.ci
def test_sigkill_at_a_random_step_then_rerun_matches_an_uninterrupted_run(setup, reference, tmp_path):
    workdir = tmp_path / "run"
    # The run kills itself inside a random training step, not a wall-clock delay after
    # some save, which a fast machine outran into the epoch's end: one of the steps
    # whose latest checkpoint is mid-epoch.
    def last_save(step):
        return max((s for s in SAVES if s < step), default=0)

    chance = random.Random()  # its own generator: the fixtures seed the global one
    kill = chance.choice([k for k in range(1, STEPS + 1) if last_save(k) % STEPS_PER_EPOCH])
    after = last_save(kill)
    print(f"SIGKILL inside step {kill}; the last checkpoint is step {after}'s")
    killed = run(command(setup, workdir), env=dict(ENV, TFKD_TEST_KILL_AT_STEP=str(kill)))
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert f"saved checkpoint {workdir / 'checkpoints' / f'ckpt-{after}'} at step {after} " in killed.stdout
    assert not (workdir / "results.json").exists()

    result = run(command(setup, workdir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resumed = re.search(r"resumed from \S+ at step (\d+) \(epoch (\d), batch (\d) of 8\)", result.stdout)
    assert resumed, result.stdout[-3000:]
    step, batch = int(resumed.group(1)), int(resumed.group(3))
    assert step == after and batch == after % STEPS_PER_EPOCH, resumed.group(0)
    assert f"finishing epoch {resumed.group(2)}: its batches {batch + 1}..8" in result.stdout
    assert_same_training(workdir, reference)


@pytest.mark.slow
@pytest.mark.ci
def test_sigterm_saves_exits_75_and_rerun_resumes(setup, reference, tmp_path):
    workdir = tmp_path / "run"
    proc = start(command(setup, workdir))
    wait_for_save(proc, 9)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == EXIT_PREEMPTED == 75, output[-3000:]
    preempted = re.search(r"preempted: SIGTERM: saved checkpoint (\S+) at step (\d+) .*exiting with status 75", output)
    assert preempted, output[-3000:]
    path, step = preempted.group(1), int(preempted.group(2))
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")) == path and step > 9

    result = run(command(setup, workdir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"resumed from {path} at step {step} " in result.stdout
    assert_same_training(workdir, reference)


@pytest.mark.slow
@pytest.mark.ci
def test_nan_loss_stops_naming_the_term_and_step_and_keeps_the_last_good_checkpoint(setup, tmp_path):
    workdir = tmp_path / "run"
    result = run(command(setup, workdir, "--loss_args=nan_at.step=11", losses="ce:1,codir:0.1,nan_at:1"))
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "training diverged: 'loss_nan_at' is nan, 'loss' is nan at step 11 (epoch 2, batch 3 of 8)" in result.stderr
    checkpoints = workdir / "checkpoints"
    assert f"The last good checkpoint is kept: {checkpoints / 'ckpt-9'}" in result.stderr
    assert os.path.basename(tf.train.latest_checkpoint(str(checkpoints))) == "ckpt-9"
    assert not [f for f in os.listdir(checkpoints) if f.startswith("ckpt-") and int(f[5:].split(".")[0].split("_")[0]) >= 11]


@pytest.mark.slow
@pytest.mark.ci
def test_truncated_checkpoint_is_refused_not_restarted(setup, reference, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    data = workdir / "checkpoints" / f"ckpt-{STEPS}.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    result = run(command(setup, workdir))
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"ckpt-{STEPS}' is unreadable: truncated or damaged" in result.stderr
    assert "Traceback" not in result.stderr and "Epoch 1/" not in result.stdout
