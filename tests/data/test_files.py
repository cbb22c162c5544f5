"""Your own data files as a task: CSV/TSV/JSON Lines readers, `resolve_task`, streaming, and bad input.

Every bad input must give one `TfkdError` line that names the file and the
line; files that hold GLUE's SST-2 and MRPC rows in other shapes must read as
exactly the examples the GLUE reader gives.
"""

import dataclasses
import json
import os
import re
from typing import Sequence

import numpy as np
import pytest

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import write_json
from tfkd.data.examples import Examples
from tfkd.data.files import file_format, iter_examples, iter_records, read_examples, scan_labels
from tfkd.data.glue_tsv import load_glue_tsv
from tfkd.data.load import load_split, resolve_task, stream_split
from tfkd.data.pipeline import tokenize, tokenize_chunks
from tfkd.data.tasks import TASKS, TaskSpec, get_task
from tfkd.models.model_dir import META_FILE, ModelMetadata, read_metadata
from tfkd.training.config import DataConfig


def write(path, text: str, encoding: str = "utf-8") -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode(encoding))
    return str(path)


def write_csv(path, rows: Sequence[Sequence[str]]) -> str:
    """Rows written the way RFC 4180 says: every field quoted, quotes doubled, CRLF line ends."""
    return write(path, "".join(",".join('"' + f.replace('"', '""') + '"' for f in row) + "\r\n" for row in rows))


def write_jsonl(path, records) -> str:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def file_task(tmp_path, train: str, dev: str = "", **data) -> TaskSpec:
    return resolve_task(DataConfig(task="mine", train_file=train, dev_file=dev or train, **data))


def one_line_error(call, *, path: str, line: int, match: str) -> str:
    """Runs `call`, expecting one TfkdError line that names `path:line`, matches `match` and says how to fix it."""
    with pytest.raises(TfkdError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message, message
    assert f"{path}:{line}:" in message and "Fix:" in message, message
    assert re.search(match, message), message
    return message


# --- readers ---------------------------------------------------------------------------------


def test_csv_fields_with_commas_quotes_and_line_breaks(tmp_path):
    path = write(tmp_path / "train.csv", '\ufeffid,text,label\n'
                 '1,"loved it, really",pos\n'
                 '2,"he said ""no""\nand left",neg\r\n'
                 '3,plain,pos\n'
                 '4,"crlf\r\ninside",neg\n')
    records = list(iter_records(path, required=("text",)))
    assert [line for line, _ in records] == [2, 3, 5, 6]  # each row's first line
    assert [r["text"] for _, r in records] == ["loved it, really", 'he said "no"\nand left', "plain", "crlf\r\ninside"]
    task = file_task(tmp_path, path, text_fields=("text",))
    assert task.label_names == ("neg", "pos")
    assert load_split(task, "train", None).labels.tolist() == [1, 0, 1, 0]


def test_tsv_has_no_quoting(tmp_path):
    path = write(tmp_path / "train.tsv", 'a\tb\tlabel\nsay "hi\t"quoted, comma"\t0\r\nx\ty\t1\n\n')
    ex = load_split(file_task(tmp_path, path, text_fields=("a", "b")), "train", None)
    assert ex.text_a == ['say "hi', "x"] and ex.text_b == ['"quoted, comma"', "y"] and ex.labels.tolist() == [0, 1]


def test_format_by_extension_or_option(tmp_path):
    assert [file_format(p) for p in ("a.csv", "b.TSV", "c.jsonl", "d.ndjson")] == ["csv", "tsv", "jsonl", "jsonl"]
    assert file_format("data.txt", "tsv") == "tsv"
    with pytest.raises(TfkdError, match=r"extension '\.txt'.*DataConfig\.data_format"):
        file_format("data.txt")
    with pytest.raises(TfkdError, match="data format 'xml'"):
        file_format("a.csv", "xml")
    path = write(tmp_path / "rows.txt", "text,label\nx,a\ny,b\n")
    assert file_task(tmp_path, path, text_fields=("text",), data_format="csv").label_names == ("a", "b")


def test_jsonl_regression_is_inferred_and_read_as_floats(tmp_path):
    rows = [{"q": f"question {i}", "a": f"answer {i}", "score": s} for i, s in enumerate([0.5, 3, "4.25", 1])]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    task = file_task(tmp_path, train, text_fields=("q", "a"), label_field="score")
    assert task.is_regression and task.num_labels == 1 and task.label_names is None
    assert task.metrics == ("pearson", "spearman") and task.is_pair
    ex = load_split(task, "dev", None)
    assert ex.labels.dtype == np.float32 and ex.labels.tolist() == [0.5, 3.0, 4.25, 1.0]
    assert ex.text_b == ["answer 0", "answer 1", "answer 2", "answer 3"]


def test_jsonl_labels_are_compared_as_strings(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"t": "a", "y": 1}, {"t": "b", "y": "0"}, {"t": "c", "y": True}])
    task = file_task(tmp_path, train, text_fields=("t",), label_field="y")
    assert task.label_names == ("0", "1", "true")
    assert load_split(task, "train", None).labels.tolist() == [1, 0, 2]


# --- task type, label order, metrics ------------------------------------------------------


@pytest.mark.parametrize("labels, regression", [
    (["0", "1", "1"], False),                          # binary ids
    (["1", "2", "3", "4", "5"], False),                # star ratings
    ([str(i) for i in range(10)], False),              # exactly 10 whole numbers: still classes
    ([str(i) for i in range(11)], True),               # more than 10
    (["1", "2.5", "1"], True),                         # a fraction
    (["1.0", "2.0"], False),                           # whole numbers written as floats
    (["pos", "1", "2.5"], False),                      # not all numbers
])
def test_task_type_rule(tmp_path, labels, regression):
    path = write(tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{y}\n" for i, y in enumerate(labels)))
    assert file_task(tmp_path, path, text_fields=("text",)).is_regression is regression


def test_sorted_labels_by_value_when_numeric_else_as_strings(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,10\nb,2\nc,9\nd,2\n")
    assert file_task(tmp_path, path, text_fields=("text",)).label_names == ("2", "9", "10")
    path = write(tmp_path / "names.csv", "text,label\na,pos\nb,neg\nc,neutral\n")
    task = file_task(tmp_path, path, text_fields=("text",))
    assert task.label_names == ("neg", "neutral", "pos") and task.metrics == ("accuracy", "macro_f1")


def test_explicit_label_names_fix_the_order(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    task = file_task(tmp_path, path, text_fields=("text",), label_names=("pos", "neg"), positive_label="pos")
    assert task.label_names == ("pos", "neg") and task.positive_id == 0 and task.metrics == ("accuracy", "f1")
    assert load_split(task, "train", None).labels.tolist() == [0, 1]
    assert file_task(tmp_path, path, text_fields=("text",)).metrics == ("accuracy",)  # no positive label: no F1


def test_explicit_task_type_and_metrics(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,1\nb,2\nc,3\n")
    task = file_task(tmp_path, path, text_fields=("text",), task_type="regression", metrics=("spearman",))
    assert task.is_regression and task.metrics == ("spearman",)
    assert load_split(task, "train", None).labels.tolist() == [1.0, 2.0, 3.0]
    task = file_task(tmp_path, path, text_fields=("text",), metrics="mcc,accuracy")  # comma-separated string
    assert task.metrics == ("mcc", "accuracy") and task.label_names == ("1", "2", "3")


@pytest.mark.parametrize("data, match", [
    (dict(metrics=("f1",)), "f1 is binary F1.*3 classes.*macro_f1"),
    (dict(metrics=("pearson",)), "classification task; pearson do not apply"),
    (dict(metrics=("auc",)), r"unknown: \['auc'\]"),
    (dict(positive_label="w"), "positive label 'w' is not one of its labels"),
    (dict(task_type="regression", label_names=("a", "b")), "a regression task but has label names"),
    (dict(task_type="ordinal"), "task type 'ordinal'"),
    (dict(text_fields=()), "name the text column"),
    (dict(text_fields=("text", "label")), "another column in DataConfig.label_field"),
    (dict(dev_file=""), "needs a DataConfig.dev_file"),
    (dict(dev_file="missing.csv"), "DataConfig.dev_file: file not found: missing.csv"),
    (dict(test_file="test.xml"), r"extension '\.xml'"),
])
def test_bad_task_descriptions_are_refused(tmp_path, data, match):
    path = write(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,z\n")
    write(tmp_path / "test.xml", "")
    fields = dict(task="mine", train_file=path, dev_file=path, text_fields=("text",))
    fields.update(data)
    fields["test_file"] = str(tmp_path / fields["test_file"]) if fields.get("test_file") else ""
    with pytest.raises(TfkdError, match=match):
        resolve_task(DataConfig(**fields))


def test_a_single_training_label_is_refused(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(TfkdError, match=r"every row has the label 'x'.*DataConfig\.label_names"):
        file_task(tmp_path, path, text_fields=("text",))


def test_glue_tasks_resolve_to_the_predefined_specs(tmp_path):
    for name, task in TASKS.items():
        assert resolve_task(DataConfig(task=name)) is task
    assert resolve_task(DataConfig(task="mnli", metrics=("accuracy", "macro_f1"))).metrics == ("accuracy", "macro_f1")
    with pytest.raises(TfkdError, match=r"DataConfig\.dev_file, DataConfig\.text_fields describe your own files.*no DataConfig\.train_file"):
        resolve_task(DataConfig(task="sst2", dev_file="dev.csv", text_fields=("text",)))


def test_a_file_task_is_not_named_after_a_glue_task(tmp_path):
    path = write(tmp_path / "reviews.csv", "text,label\na,x\nb,y\n")
    assert resolve_task(DataConfig(train_file=path, dev_file=path, text_fields=("text",))).name == "reviews"
    assert resolve_task(DataConfig(task="mine", train_file=path, dev_file=path, text_fields=("text",))).name == "mine"


def test_task_spec_round_trips_through_json_and_model_metadata(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,neg\nb,pos\n")
    task = file_task(tmp_path, path, text_fields=("text",), positive_label="pos", test_file=path)
    recorded = json.loads(json.dumps(task.to_dict()))
    assert TaskSpec.from_dict(recorded) == task and "tsv_train_file" not in recorded
    write_json(str(tmp_path / META_FILE), dataclasses.asdict(ModelMetadata(task=task.name, task_spec=recorded)))
    assert read_metadata(str(tmp_path)).recorded_task() == task
    for name, glue in TASKS.items():
        assert TaskSpec.from_dict(json.loads(json.dumps(glue.to_dict()))) == glue
    # A tfkd_model.json from before task specs were recorded still loads; a GLUE name resolves.
    write(tmp_path / "old" / META_FILE, json.dumps({"task": "mrpc", "label_names": ["not_equivalent", "equivalent"]}))
    assert read_metadata(str(tmp_path / "old")).recorded_task() is get_task("mrpc")
    assert ModelMetadata(task="someone_elses").recorded_task() is None
    with pytest.raises(TfkdError, match="fields colour that this tfkd does not know"):
        TaskSpec.from_dict({**recorded, "colour": "red"})


# --- splits ----------------------------------------------------------------------------------


def test_test_split_may_lack_labels(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    test = write(tmp_path / "test.csv", "id,text\n1,c\n2,d\n")
    task = file_task(tmp_path, train, text_fields=("text",), test_file=test)
    ex = load_split(task, "test", None)
    assert ex.text_a == ["c", "d"] and not ex.has_labels and ex.labels.tolist() == [-1, -1]
    assert load_split(dataclasses.replace(task, test_file=train), "test", None).has_labels
    with pytest.raises(TfkdError, match="unknown split 'test' for task mine.*needs DataConfig\.test_file"):
        load_split(dataclasses.replace(task, test_file=""), "test", None)
    with pytest.raises(TfkdError, match=r"unknown split 'dev_mismatched'.*train, dev, test"):
        load_split(task, "dev_mismatched", None)


def test_jsonl_test_lines_must_agree_on_having_a_label(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"t": "a", "y": "x"}, {"t": "b", "y": "z"}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"t": "a"}, {"t": "b", "y": "x"}])
    task = file_task(tmp_path, train, text_fields=("t",), label_field="y", test_file=test)
    one_line_error(lambda: load_split(task, "test", None), path=test, line=2, match="a key 'y', unlike line 1")


def test_max_examples_stops_reading(tmp_path):
    path = str(tmp_path / "train.csv")
    with open(path, "wb") as f:
        f.write(b"text,label\na,x\nb,y\nc,x\n\xff,y\n")
    task = TaskSpec(name="t", text_fields=("text",), label_names=("x", "y"), is_regression=False,
                    metrics=("accuracy",), train_file=path, dev_file=path, label_field="label")
    assert load_split(task, "train", None, max_examples=2).text_a == ["a", "b"]  # the bad line is never read
    assert [len(c) for c in stream_split(task, "train", None, max_examples=3, chunk_rows=2)] == [2, 1]


# --- streaming tokenization -----------------------------------------------------------------


def test_chunked_reading_and_tokenizing_equal_the_whole(tmp_path, tokenizer):
    rows = [(f"a {'b ' * (i % 7)}the movie", f"c{' d' * (i % 11)}", "xy"[i % 2]) for i in range(1300)]
    path = write_csv(tmp_path / "train.csv", [("first", "second", "label")] + rows)
    task = file_task(tmp_path, path, text_fields=("first", "second"))
    chunks = list(iter_examples(task, "train", chunk_rows=300))
    assert [len(c) for c in chunks] == [300] * 4 + [100]
    whole, joined = read_examples(task, "train"), Examples.concatenate(chunks)
    assert (joined.text_a, joined.text_b, joined.labels.tolist()) == (whole.text_a, whole.text_b, whole.labels.tolist())
    streamed = tokenize_chunks(iter_examples(task, "train", chunk_rows=300), tokenizer, max_seq_length=12)
    expected = tokenize(whole, tokenizer, max_seq_length=12)
    for field in dataclasses.fields(expected):
        np.testing.assert_array_equal(getattr(streamed, field.name), getattr(expected, field.name), err_msg=field.name)
    assert expected.num_truncated > 0 and streamed.has_labels


def test_tokenize_chunks_reports_a_bad_row_as_itself(tmp_path, tokenizer):
    path = write(tmp_path / "train.csv", "text,label\n" + "a,x\n" * 700 + "b,y\n,x\n")
    task = TaskSpec(name="t", text_fields=("text",), label_names=("x", "y"), is_regression=False,
                    metrics=("accuracy",), train_file=path, dev_file=path, label_field="label")
    # The error surfaces from inside tf.data with its type and message.
    one_line_error(lambda: tokenize_chunks(stream_split(task, "train", None, chunk_rows=256), tokenizer, 16),
                   path=path, line=703, match="the text in column 'text' is empty")


# --- bad input: one line with file and line ---------------------------------------------------


def labelled(tmp_path, train_text: str, name: str = "train.csv", **data) -> TaskSpec:
    good = write(tmp_path / "good.csv", "text,label\na,x\nb,y\n")
    path = write(tmp_path / name, train_text)
    return resolve_task(DataConfig(task="mine", train_file=good, dev_file=path, text_fields=("text",), **data))


@pytest.mark.parametrize("name, text, line, match", [
    ("dev.csv", "sentence,label\na,x\n", 1, r"the header has no column named 'text' \(found: 'sentence', 'label'\)"),
    ("dev.tsv", "text\tgold\na\tx\n", 1, "the header has no column named 'label'"),
    ("dev.jsonl", '{"text": "a", "label": "x"}\n{"txt": "b", "label": "y"}\n', 2, "no key 'text' \\(keys: 'txt'"),
    ("dev.csv", "text,label\na,x\n  ,y\n", 3, "the text in column 'text' is empty"),
    ("dev.csv", 'text,label\na,x\n"",y\n', 3, "the text in column 'text' is empty"),
    ("dev.jsonl", '{"text": null, "label": "x"}\n', 1, "the text in column 'text' is a JSON null"),
    ("dev.jsonl", '{"text": 7, "label": "x"}\n', 1, "is a JSON 7, not a string"),
    ("dev.csv", "text,label\na,x\nb,maybe\n", 3, "label 'maybe'.*never occurs in the training file .*good.csv"),
    ("dev.csv", "text,label\na,x\nb,\n", 3, "the label in column 'label' is empty"),
    ("dev.jsonl", '{"text": "a", "label": ["x"]}\n', 1, "the label in column 'label' is a JSON"),
    ("dev.csv", "", 1, "the file is empty"),
    ("dev.csv", "\n\n", 1, "the file is empty"),
    ("dev.jsonl", "", 1, "the file is empty"),
    ("dev.csv", "text,label\n", 1, "a header but no data rows"),
    ("dev.jsonl", "\n  \n", 1, "only blank lines"),
    ("dev.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y",}\n', 2, "not valid JSON"),
    ("dev.jsonl", '["a", "x"]\n', 1, "a JSON list, not an object"),
    ("dev.csv", "text,label\na,x\nb,y,z\n", 3, "3 comma-separated fields, but the header has 2"),
    ("dev.tsv", "text\tlabel\na\tx\nb\tc\ty\n", 3, "3 tab-separated fields.*a tab inside a text"),
    ("dev.csv", 'text,label\na,x\n"b,y\nc,x\n', 3, "a quoted field that starts in this row is never closed"),
    ("dev.csv", 'text,label\n"a"b,x\n', 2, "text follows a closing quote"),
    ("dev.csv", "text,label\na\rb,x\n", 2, "carriage return"),
])
def test_bad_dev_files(tmp_path, name, text, line, match):
    task = labelled(tmp_path, text, name)
    one_line_error(lambda: load_split(task, "dev", None), path=task.dev_file, line=line, match=match)


def test_not_utf8_names_the_line(tmp_path):
    task = labelled(tmp_path, "text,label\na,x\nb,y\n")
    with open(task.dev_file, "wb") as f:
        f.write("text,label\na,x\ncaf\xe9,y\n".encode("latin1"))
    one_line_error(lambda: load_split(task, "dev", None), path=task.dev_file, line=3, match="not valid UTF-8.*iconv")


def test_not_utf8_inside_a_quoted_multiline_field_names_its_physical_line(tmp_path):
    task = labelled(tmp_path, "text,label\na,x\n")
    with open(task.dev_file, "wb") as f:
        f.write(b'text,label\n"line one\nline \xff two",x\n')
    one_line_error(lambda: load_split(task, "dev", None), path=task.dev_file, line=3, match="not valid UTF-8")


@pytest.mark.parametrize("value", ["high", "nan", "inf", ""])
def test_non_numeric_regression_target(tmp_path, value):
    train = write(tmp_path / "train.csv", "text,score\na,0.5\nb,1.5\n")
    dev = write(tmp_path / "dev.csv", f"text,score\na,0.5\nb,{value}\n")
    task = resolve_task(DataConfig(task="mine", train_file=train, dev_file=dev, text_fields=("text",),
                                   label_field="score"))
    assert task.is_regression
    one_line_error(lambda: load_split(task, "dev", None), path=dev, line=3,
                   match="not a number.*regression task|is empty")


def test_explicit_label_names_refuse_an_unlisted_training_label(tmp_path):
    path = write(tmp_path / "train.csv", "text,label\na,pos\nb,meh\n")
    task = file_task(tmp_path, path, text_fields=("text",), label_names=("neg", "pos"))
    one_line_error(lambda: load_split(task, "train", None), path=path, line=3,
                   match="label 'meh' in column 'label' is not one of DataConfig\\.label_names \\(neg, pos\\)")


def test_bad_training_labels_fail_while_resolving(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"t": "a", "y": "x"}\n{"t": "b"}\n')
    one_line_error(lambda: file_task(tmp_path, path, text_fields=("t",), label_field="y"), path=path, line=2,
                   match="no key 'y'")


def test_scan_reads_every_label_once(tmp_path):
    path = write(tmp_path / "train.tsv", "text\tlabel\na\t2\n\nb\t10\nc\t2\n")
    scan = scan_labels(path, "", "label")
    assert (scan.labels, scan.all_numeric, scan.all_whole, scan.rows, scan.more) == (("2", "10"), True, True, 3, False)


# --- GLUE-shaped files read as the GLUE reader reads them -------------------------------------

SST2 = [("it 's a charming , \" funny \" journey .", 1), ("an unbalanced \" quote , and commas", 0),
        ("the movie is dull", 0), ("a fine, fine film", 1)]
MRPC = [("Amrozi called him \" the witness \" .", "He was \" the witness \" , they said .", 1),
        ("x , y .", "z .", 0), ("Rain fell .", "It rained , a lot .", 1)]


def test_sst2_as_csv_with_other_columns_and_string_labels_reads_as_glue(tmp_path, write_tsv):
    write_tsv(tmp_path / "SST-2" / "dev.tsv", ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in SST2])
    glue = load_glue_tsv(get_task("sst2"), "dev", str(tmp_path))
    path = write_csv(tmp_path / "sst2.csv", [("id", "review", "sentiment")]
                     + [(str(i), s, ("negative", "positive")[y]) for i, (s, y) in enumerate(SST2)])
    own = load_split(resolve_task(DataConfig(task="reviews", train_file=path, dev_file=path, text_fields=("review",),
                                             label_field="sentiment")), "dev", None)
    assert (own.text_a, own.text_b, own.labels.tolist()) == (glue.text_a, glue.text_b, glue.labels.tolist())
    assert own.labels.dtype == glue.labels.dtype


def test_mrpc_as_csv_and_jsonl_with_other_columns_and_string_labels_reads_as_glue(tmp_path, write_tsv):
    write_tsv(tmp_path / "MRPC" / "train.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
              + [f"{y}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, y) in enumerate(MRPC)], bom=True)
    glue = load_glue_tsv(get_task("mrpc"), "train", str(tmp_path))
    names = ("not_equivalent", "equivalent")
    csv_path = write_csv(tmp_path / "mrpc.csv", [("left", "right", "paraphrase")]
                         + [(a, b, names[y]) for a, b, y in MRPC])
    jsonl_path = write_jsonl(tmp_path / "mrpc.jsonl", [{"left": a, "right": b, "paraphrase": names[y]}
                                                       for a, b, y in MRPC])
    for path in (csv_path, jsonl_path):
        task = resolve_task(DataConfig(task="para", train_file=path, dev_file=path, text_fields=("left", "right"),
                                       label_field="paraphrase", label_names=names, positive_label="equivalent"))
        own = load_split(task, "train", None)
        assert (own.text_a, own.text_b, own.labels.tolist()) == (glue.text_a, glue.text_b, glue.labels.tolist())
        assert task.positive_id == get_task("mrpc").positive_id == 1
