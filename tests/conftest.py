import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts (and leaves) the global dtype policy at float32."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A tiny teacher (a tfkd model directory fine-tuned on "sst2") and SST-2-shaped TSV files under glue/."""
    from tests.helpers import WORDS, write_vocab
    from tfkd.models import BertModel, ModelMetadata, save_model_dir

    root = tmp_path_factory.mktemp("e2e")
    vocab = str(root / "vocab.txt")
    vocab_size = write_vocab(vocab)
    teacher = BertModel(vocabulary_size=vocab_size, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                        num_classes=2, max_sequence_length=32, name="teacher")
    save_model_dir(str(root / "teacher"), teacher, vocab, ModelMetadata(task="sst2", label_names=["negative", "positive"], base="", role="teacher"))
    rng = np.random.default_rng(0)
    glue = root / "glue" / "SST-2"
    glue.mkdir(parents=True)
    for split, n in (("train", 48), ("dev", 20)):
        rows = ["sentence\tlabel"]
        for _ in range(n):
            words = rng.choice(WORDS, size=rng.integers(2, 7))
            rows.append(" ".join(words) + f"\t{int('good' in words or 'great' in words)}")
        (glue / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root
