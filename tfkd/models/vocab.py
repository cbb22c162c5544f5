"""A `BertModel` whose token embedding keeps only some rows: the model side of vocabulary trimming.

`tfkd.data.vocab.trim_vocabulary` chooses the rows; `keep_tokens` builds the
smaller model. Every other weight is shared by value, so the trimmed model
computes exactly what the original computes on the kept ids.

Example:
>>> import numpy as np
>>> model = BertModel(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> kept = np.array([0, 1, 2, 3, 4, 7, 9])
>>> small = keep_tokens(model, kept)
>>> small.vocabulary_size
7
>>> inputs = lambda ids: {"token_ids": np.array([ids]), "segment_ids": np.zeros((1, 4), "int32"),
...                       "padding_mask": np.ones((1, 4), "int32")}
>>> bool(np.allclose(model(inputs([2, 7, 9, 3]))["logits"], small(inputs([2, 5, 6, 3]))["logits"], atol=1e-6))
True
"""

from __future__ import annotations

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.models.bert import BertModel, copy_weights_by_layer_name


def keep_tokens(model: BertModel, kept_ids: np.ndarray) -> BertModel:
    """`model` with the token-embedding rows `kept_ids` (new id `i` = old id `kept_ids[i]`), all else copied.

    Args:
        model: the model to trim (attention outputs and name are kept).
        kept_ids: ascending, distinct ids below `model.vocabulary_size`.
    """
    kept_ids = np.asarray(kept_ids)
    if len(kept_ids) == 0 or kept_ids.min() < 0 or kept_ids.max() >= model.vocabulary_size:
        raise TfkdError(f"the kept token ids must lie in 0..{model.vocabulary_size - 1}, the model's vocabulary. "
                        "Fix: trim with the vocabulary the model was built for.")
    config = model.get_config()
    config["vocabulary_size"] = int(len(kept_ids))
    trimmed = BertModel.from_config(config)
    copy_weights_by_layer_name(model, trimmed, names=[layer.name for layer in model.layers
                                                      if layer.name != "token_embedding"])
    rows = model.token_embedding.embeddings.numpy()[kept_ids]
    trimmed.token_embedding.set_weights([rows])
    return trimmed
