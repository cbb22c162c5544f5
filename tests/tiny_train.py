"""Tiny `python -m tfkd.train` runs in subprocesses, for the tests of a run's workdir.

A 2-layer teacher of width 16 saved as a tfkd model directory (metadata task
`synthetic`) distils a 1-layer student on the first 48 examples of tfkd's
synthetic task: 6 steps per epoch, a few seconds a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import tfkd  # noqa: F401  (selects the TensorFlow backend)
from tfkd.models import BertModel, ModelMetadata, save_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["the", "movie", "film", "plot", "was", "is", "not", "very", "good", "great", "bad", "dull", "but", "it"]
STEPS_PER_EPOCH = 6  # 48 examples, batch 8
ENV = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def save_teacher(directory: Path, task: str = "synthetic", label_names: Sequence[str] = ("negative", "positive"),
                 num_classes: int = 2) -> Path:
    """A random tiny teacher saved as a fine-tuned tfkd model of `task`."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "source_vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    model = BertModel(vocabulary_size=len(WORDS) + 5, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                      num_classes=num_classes, max_sequence_length=32, name="teacher")
    save_model_dir(str(directory / "model"), model, str(vocab),
                   ModelMetadata(task=task, label_names=list(label_names), base="", role="teacher", max_seq_length=32))
    return directory / "model"


def train_command(teacher: Path, workdir: Path, *extra: str) -> List[str]:
    return [
        sys.executable, "-m", "tfkd.train", f"--workdir={workdir}", f"--teacher={teacher}", "--task=synthetic",
        "--max_train_examples=48", "--method=kd", "--student_layers=1", "--student_hidden_dim=16",
        "--student_heads=2", "--student_intermediate_dim=32", "--student_init=teacher", "--max_seq_length=32",
        "--batch_size=8", "--eval_batch_size=200", "--epochs=1", "--learning_rate=1e-3", "--jit_compile=false",
        *extra,
    ]


def run(command: Sequence[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def start(command: Sequence[str]) -> subprocess.Popen:
    return subprocess.Popen(list(command), cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(process: subprocess.Popen, text: str) -> str:
    """The child's output up to the first line containing `text`; fails if it ends first."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.wait()
    raise AssertionError(f"the run ended (status {process.returncode}) before printing {text!r}:\n" + "".join(seen)[-3000:])


def assert_one_clear_error(result: subprocess.CompletedProcess, message: str, status: int = 2) -> None:
    assert result.returncode == status, (result.stdout[-2000:], result.stderr[-3000:])
    assert "tfkd: error: " in result.stderr and message in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
