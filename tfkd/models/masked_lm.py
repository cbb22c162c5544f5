"""A tfkd encoder with a trained masked-LM head, as `tfkd.pretrain` leaves it: a masked LM for augmentation.

`tfkd.pretrain` trains the student with BERT's MLM head (keras-hub's
`MaskedLMHead`, its output matrix tied to the student's token embedding). The
student goes to `<workdir>/model/` like any tfkd model, and the head's own
weights go beside it (`mlm_head.weights.npz`, named in `tfkd_model.json`), so
`--augment=mlm --augment_args=mlm.preset=<workdir>/model` samples substitutes
from an MLM trained on the user's own text. The encoder keeps tfkd's exact
GELU: converting it to a keras-hub `BertBackbone` (tanh GELU) would change
its predictions.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.src.models.bert.bert_backbone import bert_kernel_initializer

from tfkd.core.errors import TfkdError
from tfkd.data.augment import check_masked_lm_vocabulary, load_keras_hub_masked_lm
from tfkd.data.tokenizer import read_vocab
from tfkd.models.bert import BertModel
from tfkd.models.model_dir import MODEL_FILE, load_model_dir, read_metadata

HEAD_FILE = "mlm_head.weights.npz"
# The key of `ModelMetadata.extra` that records a saved head and its settings.
HEAD_METADATA_KEY = "mlm_head"


def masked_lm_head(token_embedding: keras.layers.ReversibleEmbedding, layer_norm_epsilon: float = 1e-12,
                   name: str = "mlm_head") -> keras_hub.layers.MaskedLMHead:
    """BERT's MLM head on `token_embedding` (dense + GELU + LayerNorm, the transposed embedding, a bias), built."""
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=token_embedding,
        intermediate_activation="gelu",
        layer_norm_epsilon=layer_norm_epsilon,
        kernel_initializer=bert_kernel_initializer(),
        dtype=token_embedding.dtype_policy,
        name=name,
    )
    head.build((None, None, token_embedding.output_dim))
    return head


def untied(variables: Sequence[Any], token_embedding: keras.layers.Layer) -> List[Any]:
    """`variables` without those of the tied `token_embedding`, which belong to the encoder."""
    tied = {id(v) for v in token_embedding.variables}
    return [v for v in variables if id(v) not in tied]


def head_weights(head: keras_hub.layers.MaskedLMHead) -> List[Any]:
    """The head's own variables: all but the tied token embedding's."""
    return untied(head.weights, head.token_embedding)


def _relative(path: str) -> str:
    # "mlm_head/intermediate_dense/kernel" -> "intermediate_dense/kernel": independent of the head's name.
    return path.split("/", 1)[1] if "/" in path else path


def save_head(directory: str, head: keras_hub.layers.MaskedLMHead) -> Dict[str, Any]:
    """Writes the head's own weights to `directory/HEAD_FILE`; returns the metadata entry that describes them."""
    arrays = {_relative(v.path): keras.ops.convert_to_numpy(v) for v in head_weights(head)}
    np.savez(os.path.join(directory, HEAD_FILE), **arrays)
    return {"file": HEAD_FILE, "layer_norm_epsilon": float(head.layer_norm_epsilon)}


class MaskedLM:
    """A tfkd `BertModel` and its MLM head: logits over the vocabulary at the masked positions.

    Called like keras-hub's `BertMaskedLM`, with `token_ids`, `segment_ids`, `padding_mask` and
    `mask_positions` (`[B, P]`), it returns `[B, P, vocabulary]` logits.

    Example: a tiny encoder and an untrained head, saved and loaded back.
    >>> import tempfile
    >>> from tfkd.models.model_dir import ModelMetadata, save_model_dir
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good"]
    >>> encoder = BertModel(len(vocab), num_layers=1, num_heads=1, hidden_dim=4, intermediate_dim=8,
    ...                     max_sequence_length=16)
    >>> directory = tempfile.mkdtemp()
    >>> with open(os.path.join(directory, "vocab.txt"), "w") as f:
    ...     _ = f.write("\\n".join(vocab) + "\\n")
    >>> head = masked_lm_head(encoder.get_layer("token_embedding"))
    >>> save_model_dir(directory, encoder, os.path.join(directory, "vocab.txt"),
    ...                ModelMetadata(extra={HEAD_METADATA_KEY: save_head(directory, head)}))
    >>> mlm = MaskedLM.from_directory(directory)
    >>> inputs = {"token_ids": np.array([[2, 5, 4, 7, 3]]), "segment_ids": np.zeros((1, 5), "int32"),
    ...           "padding_mask": np.ones((1, 5), "int32"), "mask_positions": np.array([[2]])}
    >>> mlm(inputs).shape
    TensorShape([1, 1, 9])
    """

    def __init__(self, encoder: BertModel, head: keras_hub.layers.MaskedLMHead, vocab_path: str = ""):
        self.encoder, self.head, self.vocab_path = encoder, head, vocab_path

    def __call__(self, inputs: Mapping[str, Any], training: bool = False) -> tf.Tensor:
        features = {name: inputs[name] for name in ("token_ids", "segment_ids", "padding_mask")}
        hidden = self.encoder(features, training=training)["hidden_states"][-1]
        return self.head(hidden, mask_positions=tf.cast(inputs["mask_positions"], tf.int32))

    @classmethod
    def from_directory(cls, directory: str) -> "MaskedLM":
        """The masked LM of a tfkd model directory with a saved head (`<pretrain workdir>/model`, or the
        pre-training workdir itself); a `TfkdError` with the fix when the directory has none."""
        directory = model_directory(directory) or directory
        metadata = read_metadata(directory)
        entry = (metadata.extra if metadata else {}).get(HEAD_METADATA_KEY)
        path = os.path.join(directory, entry.get("file", HEAD_FILE)) if entry else ""
        if not path or not os.path.exists(path):
            raise TfkdError(
                f"the tfkd model in '{directory}' has no masked-LM head ({HEAD_FILE}). Fix: point at the model/ of a "
                "python -m tfkd.pretrain run with an MLM loss; a pre-training run made before tfkd saved the head "
                "writes it when its command is run again (it restores the last checkpoint)."
            )
        encoder, vocab_path, _ = load_model_dir(directory)
        head = masked_lm_head(encoder.get_layer("token_embedding"), entry.get("layer_norm_epsilon", 1e-12))
        try:
            with np.load(path) as arrays:
                saved = {name: arrays[name] for name in arrays.files}
        except Exception as e:  # a truncated or foreign file: numpy raises several types
            raise TfkdError(f"'{path}' could not be read ({type(e).__name__}). Fix: run the tfkd.pretrain command "
                            "again; it rewrites the head from its last checkpoint.") from None
        for variable in head_weights(head):
            name = _relative(variable.path)
            if name not in saved or saved[name].shape != tuple(variable.shape):
                raise TfkdError(f"'{path}' does not hold this encoder's head ({name} "
                                f"{'missing' if name not in saved else f'is {saved[name].shape}'}). Fix: run the "
                                "tfkd.pretrain command that made the model again; it rewrites the head.")
            variable.assign(saved[name])
        return cls(encoder, head, vocab_path)


def model_directory(path: str) -> Optional[str]:
    """The tfkd model directory `path` names (itself, or a run folder's `model/`); None for anything else,
    such as a keras-hub preset."""
    for directory in (path, os.path.join(path, "model")):
        if os.path.exists(os.path.join(directory, MODEL_FILE)):
            return directory
    return None


def load_masked_lm(preset: str, vocabulary: Sequence[str]):
    """The masked LM that `preset` names: a tfkd model directory with an MLM head (`MaskedLM`), else a keras-hub
    `BertMaskedLM` preset (`tfkd.data.augment.load_keras_hub_masked_lm`); its vocabulary must be `vocabulary`."""
    if not (preset and os.path.isdir(preset) and model_directory(preset)):
        return load_keras_hub_masked_lm(preset, vocabulary)
    model = MaskedLM.from_directory(preset)
    check_masked_lm_vocabulary(preset, read_vocab(model.vocab_path), vocabulary)
    return model
