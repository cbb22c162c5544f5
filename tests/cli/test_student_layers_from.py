"""`--student_layers_from=importance` parses into `StudentConfig.layers_from` and survives results.json."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
from absl import flags
import tfkd.cli.train as train
from tfkd.training.config import RunConfig
for value in ("importance", "2,4,6", ""):
    train.FLAGS(["tfkd.train", "--student_layers_from=" + value])
    config = train.run_config()
    assert RunConfig.from_dict(config.to_dict()) == config
    print(config.student.layers_from)
    train.FLAGS.unparse_flags()
for value in ("importance,2", "0", "best"):
    try:
        train.FLAGS(["tfkd.train", "--student_layers_from=" + value])
    except flags.IllegalFlagValueError as e:
        print("refused", "--student_layers_from takes comma-separated integers >= 1" in str(e))
    train.FLAGS.unparse_flags()
"""


def test_importance_is_a_student_layers_from_value_and_nothing_else_is():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:6] == ["('importance',)", "(2, 4, 6)", "()"] + ["refused True"] * 3
