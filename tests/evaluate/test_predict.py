"""Predictions for rows of text (`tfkd.evaluate.predict`): every row comes back as it was, with its prediction."""

import csv
import json

import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.pipeline import tokenize
from tfkd.data.tasks import TaskSpec, get_task
from tfkd.data.tokenizer import make_tokenizer
from tfkd.evaluate.evaluator import Evaluator
from tfkd.evaluate.predict import Predictor, predict, softmax
from tfkd.models import BertModel, ModelMetadata, save_model_dir

WORDS = ["the", "movie", "was", "good", "bad", "not", "fun", "café", ",", '"']
SCORES = TaskSpec(name="similar", text_fields=("left", "right"), label_names=None, is_regression=True,
                  metrics=("pearson",), train_file="train.tsv", dev_file="dev.tsv", label_field="score")


def save_tiny(directory, vocab, num_classes, task):
    """A tiny model whose head is scaled up, so that different rows get clearly different outputs."""
    model = BertModel(vocabulary_size=len(WORDS) + 5, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                      num_classes=num_classes, max_sequence_length=32)
    kernel, bias = model.logits_dense.get_weights()
    model.logits_dense.set_weights([np.random.default_rng(0).normal(0, 3, kernel.shape), bias + 0.1])
    save_model_dir(str(directory), model, str(vocab), ModelMetadata(
        task=task.name, label_names=list(task.label_names or ()), max_seq_length=16, task_spec=task.to_dict()))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n", encoding="utf-8")
    classifier = save_tiny(root / "sst2", vocab, 2, get_task("sst2"))
    regressor = save_tiny(root / "similar", vocab, 1, SCORES)
    return {"root": root, "vocab": str(vocab), "sst2": (root / "sst2", classifier), "similar": (root / "similar", regressor)}


def reference_logits(models, model, texts_a, texts_b=None):
    """Each example run alone, unpadded: what batching by length must not change."""
    split = tokenize(Examples(texts_a, texts_b, np.zeros(len(texts_a), np.int32), "test"),
                     make_tokenizer(models["vocab"]), 16)
    rows = []
    for i in range(len(split)):
        ids, segments = split.example(i)
        out = model({"token_ids": ids[None], "segment_ids": segments[None], "padding_mask": np.ones_like(ids)[None]})
        rows.append(np.asarray(out["logits"])[0])
    return np.stack(rows)


def test_csv_rows_keep_their_quotes_commas_and_line_breaks_and_get_label_and_probabilities(models, tmp_path):
    directory, model = models["sst2"]
    rows = [["id", "sentence", "note"], ["1", 'the movie was "good", not bad', "a, b"], ["2", "bad\nmovie", '"'],
            ["3", "fun", ""], ["4", "the movie was not fun , not good", "x"], ["5", "café", "é"]]
    source = tmp_path / "in.csv"
    with open(source, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    written = Predictor(str(directory), batch_size=2).predict_file(str(source), str(tmp_path / "out.csv"),
                                                                   chunk_rows=2)
    assert written == 5 and not (tmp_path / "out.csv.partial").exists()
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        out = list(csv.reader(f))
    assert out[0] == rows[0] + ["predicted_label", "probability_negative", "probability_positive"]
    assert [row[:3] for row in out[1:]] == rows[1:]
    probabilities = np.array([[float(p) for p in row[4:]] for row in out[1:]])
    expected = softmax(reference_logits(models, model, [row[1] for row in rows[1:]]))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert len(np.unique(probabilities[:, 0])) > 1  # the rows really differ (an untrained model differs little)
    assert [row[3] for row in out[1:]] == [["negative", "positive"][i] for i in expected.argmax(-1)]


def test_jsonl_keeps_every_key_and_matches_the_library_call(models, tmp_path):
    directory, _ = models["sst2"]
    lines = [{"sentence": "the movie was good", "id": 7, "meta": {"a": [1, 2]}}, {"id": 8, "sentence": "café , bad"}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    Predictor(str(directory)).predict_file(str(source), str(tmp_path / "out.jsonl"))
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [{key: row[key] for key in line} for row, line in zip(out, lines)] == lines
    assert "café" in (tmp_path / "out.jsonl").read_text(encoding="utf-8")  # UTF-8 as it came, not \u escapes
    direct = list(predict(str(directory), lines))
    for row, prediction in zip(out, direct):
        assert list(row)[-3:] == list(prediction) == ["predicted_label", "probability_negative", "probability_positive"]
        assert row["predicted_label"] == prediction["predicted_label"]
        np.testing.assert_allclose([row["probability_negative"], row["probability_positive"]],
                                   [prediction["probability_negative"], prediction["probability_positive"]], atol=1e-6)


def test_regression_rows_get_a_score_and_pairs_use_both_text_fields(models, tmp_path):
    directory, model = models["similar"]
    source = tmp_path / "pairs.tsv"
    source.write_text('left\tright\tid\nthe movie\tthe movie was good\ta\nbad\tnot "fun"\tb\nfun\tfun\tc\n',
                      encoding="utf-8")
    Predictor(str(directory), batch_size=2).predict_file(str(source), str(tmp_path / "out.tsv"))
    lines = (tmp_path / "out.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "left\tright\tid\tscore"
    fields = [line.split("\t") for line in lines[1:]]
    assert [row[:3] for row in fields] == [["the movie", "the movie was good", "a"], ["bad", 'not "fun"', "b"],
                                           ["fun", "fun", "c"]]
    expected = reference_logits(models, model, ["the movie", "bad", "fun"], ["the movie was good", 'not "fun"', "fun"])
    np.testing.assert_allclose([float(row[3]) for row in fields], expected[:, 0], rtol=1e-5, atol=1e-5)


def test_a_missing_text_field_is_one_line_with_the_file_line_and_fix(models, tmp_path):
    directory, _ = models["sst2"]
    predictor = Predictor(str(directory))
    table = tmp_path / "in.csv"
    table.write_text("id,text\n1,the movie\n", encoding="utf-8")
    with pytest.raises(TfkdError) as error:
        predictor.predict_file(str(table), str(tmp_path / "out.csv"))
    assert str(error.value) == (
        f"{table}: the header has no column 'sentence' (found: 'id', 'text'), but the model reads the text column "
        "sentence, as in the data it was trained on. Fix: name the column 'sentence' in the input.")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.partial").exists()
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"sentence": "fun"}\n{"text": "bad"}\n', encoding="utf-8")
    with pytest.raises(TfkdError, match=rf"^{lines}:2 has no key 'sentence' \(found: 'text'\).* Fix: name the key"):
        predictor.predict_file(str(lines), "-")
    with pytest.raises(TfkdError, match=r"^row 2: the text in field 'sentence' is empty\. Fix: "):
        list(predictor.predict([{"sentence": "fun"}, {"sentence": " "}]))


def test_outputs_that_would_be_overwritten_or_misnamed_are_refused(models, tmp_path):
    directory, _ = models["sst2"]
    predictor = Predictor(str(directory))
    source = tmp_path / "in.csv"
    source.write_text("sentence,predicted_label\nfun,positive\n", encoding="utf-8")
    with pytest.raises(TfkdError, match="has a column 'predicted_label', which the predictions would overwrite"):
        predictor.predict_file(str(source), str(tmp_path / "out.csv"))
    with pytest.raises(TfkdError, match=r"named as jsonl, but .* input's format, csv. Fix: name the output .*out\.csv"):
        predictor.predict_file(str(source), str(tmp_path / "out.jsonl"))
    with pytest.raises(TfkdError, match="is the input file"):
        predictor.predict_file(str(source), str(source))


def test_a_model_without_a_recorded_task_is_refused(models, tmp_path):
    model = BertModel(vocabulary_size=len(WORDS) + 5, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    save_model_dir(str(tmp_path / "bare"), model, models["vocab"], ModelMetadata())
    with pytest.raises(TfkdError, match="records no task in its tfkd_model.json.*Fix: "):
        Predictor(str(tmp_path / "bare"))


def test_the_evaluator_refuses_a_split_without_labels(models):
    examples = Examples(["fun", "bad"], None, np.full(2, -1, np.int32), "test.csv", has_labels=False)
    split = tokenize(examples, make_tokenizer(models["vocab"]), 16)
    with pytest.raises(TfkdError) as error:
        Evaluator(get_task("sst2"), split, 8, jit_compile=False)
    message = str(error.value)
    assert "\n" not in message and message.startswith("the sst2 split to score has no labels") and "tfkd.predict" in message


def test_jsonl_predictions_are_strict_json_with_null_for_a_nan_output(models, tmp_path):
    directory, model = models["similar"]
    kernel, bias = model.logits_dense.get_weights()
    model.logits_dense.set_weights([np.full_like(kernel, np.nan), bias])  # a diverged model: every score is NaN
    save_model_dir(str(tmp_path / "nan"), model, models["vocab"], ModelMetadata(
        task=SCORES.name, max_seq_length=16, task_spec=SCORES.to_dict()))
    model.logits_dense.set_weights([kernel, bias])
    source = tmp_path / "pairs.jsonl"
    source.write_text('{"left": "fun", "right": "bad", "weight": 1.5}\n', encoding="utf-8")
    Predictor(str(tmp_path / "nan")).predict_file(str(source), str(tmp_path / "out.jsonl"))

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    text = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line, parse_constant=refuse) for line in text.splitlines()] == [
        {"left": "fun", "right": "bad", "weight": 1.5, "score": None}]
