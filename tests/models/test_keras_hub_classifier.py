"""A keras-hub `BertTextClassifier` is a fine-tuned teacher as it is: encoder, pooler and head."""

import keras
import keras_hub
import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.data.tasks import get_task
from tfkd.models.labels import match_label_order
from tfkd.models.model_dir import check_task
from tfkd.models.sources import load_teacher, source_kind

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "good", "bad", "not", "fun"]


def tiny_classifier(num_classes, preprocessor=True, activation=None):
    """A 2-layer classifier whose weights are all random (no download), head scaled so that logits differ."""
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True)
    classifier = keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=num_classes, activation=activation,
        preprocessor=keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=16) if preprocessor
        else None)
    rng = np.random.default_rng(0)
    # keras-hub initializes biases and LayerNorms to 0/1; random ones check that every weight is carried over.
    classifier.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype) for w in classifier.get_weights()])
    return classifier


def token_batch():
    """Padded token ids of a pair and two single texts, with segments, as `classifier.predict` takes them."""
    ids = np.array([[2, 5, 6, 7, 8, 3, 0, 0], [2, 9, 3, 10, 11, 3, 0, 0], [2, 5, 6, 7, 10, 11, 8, 3]], np.int32)
    segments = np.array([[0] * 8, [0, 0, 0, 1, 1, 1, 0, 0], [0] * 8], np.int32)
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": (ids > 0).astype(np.int32)}


def keras_hub_predict(classifier, batch):
    """`classifier.predict` on token ids: without its preprocessor, which would take them for text."""
    preprocessor, classifier.preprocessor = classifier.preprocessor, None
    try:
        return classifier.predict(batch, verbose=0)
    finally:
        classifier.preprocessor = preprocessor


def tfkd_logits(model, batch):
    return np.asarray(model(batch)["logits"])


def test_a_saved_keras_classifier_gives_keras_hubs_logits(tmp_path):
    classifier = tiny_classifier(3)
    path = str(tmp_path / "clf.keras")
    classifier.save(path)
    assert source_kind(path) == "keras_hub_classifier"
    loaded = load_teacher(path, num_classes=3, work_dir=str(tmp_path / "work"))
    assert loaded.fine_tuned and loaded.model.num_classes == 3 and not loaded.model.exact_gelu
    assert loaded.metadata.label_names == [] and loaded.metadata.base == path and loaded.lowercase
    with open(loaded.vocab_path, encoding="utf-8") as f:
        assert f.read().split() == VOCAB
    batch = token_batch()
    expected = keras_hub_predict(classifier, batch)
    np.testing.assert_allclose(tfkd_logits(loaded.model, batch), expected, atol=1e-5)
    assert np.abs(expected).max() > 0.5  # the comparison is not between near-zero logits
    # Unnamed classes are the task's by position: nothing to reorder, the output count is checked.
    task = get_task("mnli")
    check_task(loaded.model, loaded.metadata, task, "the teacher", False)
    assert match_label_order(loaded.model, loaded.metadata, task, "the teacher") is None
    with pytest.raises(TfkdError, match="has 3 outputs but sst2 needs 2"):
        check_task(loaded.model, loaded.metadata, get_task("sst2"), "the teacher", False)


def test_a_preset_directory_with_softmax_gives_the_logits_under_keras_hubs_probabilities(tmp_path):
    classifier = tiny_classifier(2, activation="softmax")
    classifier.save_to_preset(str(tmp_path / "preset"))
    loaded = load_teacher(str(tmp_path / "preset"), num_classes=2, work_dir=str(tmp_path / "work"))
    batch = token_batch()
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(tfkd_logits(loaded.model, batch)))
    np.testing.assert_allclose(probabilities, keras_hub_predict(classifier, batch), atol=1e-5)


def test_a_classifier_without_preprocessor_needs_vocab_txt_next_to_it(tmp_path):
    classifier = tiny_classifier(2, preprocessor=False)
    path = tmp_path / "clf.keras"
    classifier.save(str(path))
    with pytest.raises(TfkdError, match=r"saved without its preprocessor.*Fix: copy the WordPiece vocabulary .*vocab\.txt"):
        load_teacher(str(path), num_classes=2, work_dir=str(tmp_path / "work"))
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    loaded = load_teacher(str(path), num_classes=2, work_dir=str(tmp_path / "work"))
    assert loaded.vocab_path == str(tmp_path / "vocab.txt")
    np.testing.assert_allclose(tfkd_logits(loaded.model, token_batch()), keras_hub_predict(classifier, token_batch()),
                               atol=1e-5)


def test_a_backbone_alone_and_other_heads_are_refused_with_a_fix(tmp_path):
    classifier = tiny_classifier(2)
    classifier.backbone.save_to_preset(str(tmp_path / "backbone"))
    with pytest.raises(TfkdError, match="holds a keras-hub BertBackbone without a classifier head; .* Fix: save"):
        load_teacher(str(tmp_path / "backbone"), num_classes=2, work_dir=str(tmp_path / "work"))
    sigmoid = tiny_classifier(2, activation="sigmoid")
    sigmoid.save(str(tmp_path / "sigmoid.keras"))
    with pytest.raises(TfkdError, match="ends in a 'sigmoid' activation.*Fix: "):
        load_teacher(str(tmp_path / "sigmoid.keras"), num_classes=2, work_dir=str(tmp_path / "work"))


def test_a_classifier_preset_name_offline_fails_with_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    # What a machine without network sees, whether or not this one has one.
    monkeypatch.setattr(keras_hub.src.utils.preset_utils, "get_file", offline)
    monkeypatch.setattr("tfkd.models.sources.reachable", lambda host, port: False)
    with pytest.raises(TfkdError) as error:
        load_teacher("bert_tiny_en_uncased_sst2", num_classes=2, work_dir=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and message.startswith(
        "could not download keras-hub preset 'bert_tiny_en_uncased_sst2' (no network). Fix: ")
