import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import sys
import tfkd.cli.{command} as command
from absl import flags
own = {{f.name: f.default for f in flags.FLAGS.get_flags_for_module(command)}}
print(own["learning_rate"], own["student_layers"], own["batch_size"], own["mixed_precision"], own["clipnorm"])
"""


def _defaults(command: str) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(command=command)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_shared_groups_belong_to_each_command_with_its_own_learning_rate():
    # Each command runs in its own process, as users run them; results.json
    # records get_flags_for_module, so the shared groups must be listed there.
    assert _defaults("train") == ["5e-05", "3", "32", "float32", "1.0"]
    assert _defaults("pretrain") == ["0.0001", "3", "32", "float32", "1.0"]
