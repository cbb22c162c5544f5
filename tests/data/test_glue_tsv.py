import logging
import os

import numpy as np
import pytest

from tfkd.core.errors import TfkdError
from tfkd.data.glue_tsv import load_glue_tsv, read_glue_tsv, task_dir
from tfkd.data.load import load_split
from tfkd.data.tasks import get_task

MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                     "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER.replace("label1\t", "label1\tlabel2\tlabel3\tlabel4\tlabel5\t")


def mnli_row(i, s1, s2, label, dev):
    labels = [label] * (5 if dev else 1)
    return "\t".join([str(i), "p", "q", "fiction", "(x)", "(y)", "(X)", "(Y)", s1, s2, *labels, label])


def test_sst2_bom_quotes_and_trailing_blank_lines(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "SST-2" / "dev.tsv", [
        "sentence\tlabel", 'he said " hi " .\t1', 'an unbalanced " quote starts here \t0', "the next row\t1", "", "",
    ], bom=True)
    ex = read_glue_tsv(get_task("sst2"), path)
    assert ex.text_a == ['he said " hi " .', 'an unbalanced " quote starts here ', "the next row"]
    assert ex.text_b is None and ex.source == path
    assert ex.labels.dtype == np.int32 and ex.labels.tolist() == [1, 0, 1]


def test_mrpc_pairs_from_parent_or_task_folder(tmp_path, write_tsv):
    write_tsv(tmp_path / "MRPC" / "train.tsv", [
        MRPC_HEADER, '1\t11\t12\tAmrozi called him " the witness " .\tHe was " the witness " .', "0\t21\t22\tx .\ty .",
    ], bom=True)
    for glue_dir in (tmp_path, tmp_path / "MRPC"):
        ex = load_split(get_task("mrpc"), "train", str(glue_dir))
        assert ex.text_a == ['Amrozi called him " the witness " .', "x ."]
        assert ex.text_b == ['He was " the witness " .', "y ."]
        assert ex.labels.tolist() == [1, 0]


def test_headerless_cola(tmp_path, write_tsv):
    write_tsv(tmp_path / "CoLA" / "dev.tsv", [
        "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.", 'cj99\t0\t*\tHe said " hi.',
    ])
    ex = load_split(get_task("cola"), "dev", str(tmp_path))
    assert ex.text_a == ["The sailors rode the breeze clear of the rocks.", 'He said " hi.']
    assert ex.labels.tolist() == [1, 0]


def test_stsb_float_scores_and_crlf(tmp_path, write_tsv):
    write_tsv(tmp_path / "STS-B" / "dev.tsv", [
        STSB_HEADER, "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man plays.\tA man sings.\t2.500",
        "1\tmain-news\theadlines\t2015\t0001\tnone\tnone\tRain.\tSun.\t0",
    ], newline="\r\n")
    ex = load_split(get_task("stsb"), "dev", str(tmp_path))
    assert ex.labels.dtype == np.float32 and ex.labels.tolist() == [2.5, 0.0]
    assert ex.text_a == ["A man plays.", "Rain."] and ex.text_b == ["A man sings.", "Sun."]


def test_mnli_matched_and_mismatched_with_different_column_counts(tmp_path, write_tsv):
    folder = tmp_path / "MNLI"
    write_tsv(folder / "train.tsv", [MNLI_TRAIN_HEADER, mnli_row(0, "p0", "h0", "neutral", dev=False)])
    write_tsv(folder / "dev_matched.tsv", [MNLI_DEV_HEADER, mnli_row(0, "pm", "hm", "contradiction", dev=True)])
    write_tsv(folder / "dev_mismatched.tsv", [MNLI_DEV_HEADER, mnli_row(0, "px", "hx", "entailment", dev=True)])
    mnli = get_task("mnli")
    assert load_split(mnli, "train", str(tmp_path)).labels.tolist() == [1]
    for split in ("dev", "dev_matched", "validation_matched"):
        assert load_split(mnli, split, str(tmp_path)).text_a == ["pm"]
    for split in ("dev_mismatched", "validation_mismatched"):
        ex = load_split(mnli, split, str(folder))
        assert (ex.text_a, ex.text_b, ex.labels.tolist()) == (["px"], ["hx"], [0])


@pytest.mark.parametrize("name, folder, header, row, label", [
    ("qnli", "QNLI", "index\tquestion\tsentence\tlabel", "0\tWho?\tHim.\tnot_entailment", 1),
    ("rte", "RTE", "index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment", 0),
    ("wnli", "WNLI", "index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\t1", 1),
    ("qqp", "QQP", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "0\t1\t2\tA?\tB?\t1", 1),
])
def test_header_based_pair_tasks(tmp_path, write_tsv, name, folder, header, row, label):
    write_tsv(tmp_path / folder / "dev.tsv", [header, row])
    ex = load_split(get_task(name), "dev", str(tmp_path))
    assert ex.labels.tolist() == [label] and len(ex.text_b) == 1


def test_qqp_skips_known_broken_rows_and_logs_them(tmp_path, write_tsv, caplog):
    rows = [f"{i}\t{i}\t{i + 1}\tq{i}?\tp{i}?\t{i % 2}" for i in range(2000)]
    rows[7] = "7\t7\t8\tq7 broken"
    write_tsv(tmp_path / "QQP" / "train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", *rows])
    with caplog.at_level(logging.WARNING):
        ex = load_split(get_task("qqp"), "train", str(tmp_path))
    assert len(ex) == 1999 and "q7?" not in ex.text_a
    assert "skipped 1 of 2000 rows" in caplog.text and "lines 9" in caplog.text


def test_qqp_with_many_broken_rows_fails(tmp_path, write_tsv):
    rows = ["0\t1\t2\tA?\tB?\t1", "1\t1\t2\tbroken"]
    path = write_tsv(tmp_path / "train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", *rows])
    with pytest.raises(TfkdError, match="1 of 2 rows do not have 6 tab-separated columns.*first at line 3"):
        read_glue_tsv(get_task("qqp"), path)


def test_max_examples_takes_the_first_rows(tmp_path, write_tsv):
    write_tsv(tmp_path / "train.tsv", ["sentence\tlabel", *[f"s{i}\t{i % 2}" for i in range(10)]])
    ex = load_split(get_task("sst2"), "train", str(tmp_path), max_examples=3)
    assert ex.text_a == ["s0", "s1", "s2"]


def test_missing_file_says_where_glue_dir_should_point(tmp_path):
    (tmp_path / "SST-2").mkdir()
    with pytest.raises(TfkdError) as e:
        load_split(get_task("sst2"), "dev", str(tmp_path))
    message = str(e.value)
    assert os.path.join(str(tmp_path), "SST-2", "dev.tsv") in message
    assert "DataConfig.glue_dir should point at the folder with train.tsv and dev.tsv" in message


def test_glue_dir_that_is_not_a_folder(tmp_path):
    with pytest.raises(TfkdError, match="is not a folder"):
        load_split(get_task("sst2"), "dev", str(tmp_path / "nope"))


def test_another_tasks_folder_is_named_in_the_error(tmp_path, write_tsv):
    write_tsv(tmp_path / "MRPC" / "dev.tsv", [MRPC_HEADER, "1\t1\t2\ta\tb"])
    with pytest.raises(TfkdError, match="holds the MRPC files, but the task is sst2"):
        load_split(get_task("sst2"), "dev", str(tmp_path / "MRPC"))


def test_task_folder_matches_case_and_hyphen_insensitively(tmp_path):
    (tmp_path / "sst2").mkdir()
    assert task_dir(get_task("sst2"), str(tmp_path)) == str(tmp_path / "sst2")


def test_wrong_column_count_names_file_line_expected_and_got(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "dev.tsv", ["sentence\tlabel", "fine\t1", "a tab\tinside\t0"])
    with pytest.raises(TfkdError) as e:
        read_glue_tsv(get_task("sst2"), path)
    assert f"{path}:3: expected 2 tab-separated columns (sentence, label), got 3" in str(e.value)


def test_wrong_column_count_in_headerless_cola(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "train.tsv", ["src\t1\t\tok", "src\t1\tmissing sentence"])
    with pytest.raises(TfkdError, match=":2: expected 4 tab-separated columns, got 3"):
        read_glue_tsv(get_task("cola"), path)


def test_unknown_label_names_file_line_value_and_valid_labels(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment",
                                            "1\ta\tb\tneutral"])
    with pytest.raises(TfkdError) as e:
        read_glue_tsv(get_task("rte"), path)
    assert f"{path}:3: unknown label 'neutral'" in str(e.value)
    assert "'entailment', 'not_entailment'" in str(e.value)


def test_stsb_score_that_is_not_a_number(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, "0\tg\tf\ty\to\ts\ts\ta\tb\thigh"])
    with pytest.raises(TfkdError, match=r":2: label 'high' in column 'score' is not a number"):
        read_glue_tsv(get_task("stsb"), path)


@pytest.mark.parametrize("score", ["7.5", "-0.1", "nan", "NaN", "inf", "-inf"])
def test_stsb_score_outside_0_to_5_or_not_finite_names_file_and_line(tmp_path, write_tsv, score):
    path = write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, "0\tg\tf\ty\to\ts\ts\ta\tb\t5.0",
                                            f"0\tg\tf\ty\to\ts\ts\ta\tb\t{score}"])
    with pytest.raises(TfkdError) as e:
        read_glue_tsv(get_task("stsb"), path)
    assert f"{path}:3: label '{score}' in column 'score' is not a number between 0 and 5" in str(e.value)
    assert "Fix: " in str(e.value)


@pytest.mark.parametrize("lines", [[], ["sentence\tlabel"], ["sentence\tlabel", "", ""]])
def test_empty_files(tmp_path, write_tsv, lines):
    path = write_tsv(tmp_path / "dev.tsv", lines)
    with pytest.raises(TfkdError, match="empty|no examples"):
        read_glue_tsv(get_task("sst2"), path)


def test_header_without_the_expected_column(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "dev.tsv", ["text\tlabel", "a\t1"])
    with pytest.raises(TfkdError, match=r":1: the header has no column 'sentence' \(found: text, label\)"):
        read_glue_tsv(get_task("sst2"), path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"sentence\tlabel\nok\t1\nbad \xff byte\t0\n")
    with pytest.raises(TfkdError, match=":3: not valid UTF-8"):
        read_glue_tsv(get_task("sst2"), str(path))


def test_blank_lines_between_rows_are_logged(tmp_path, write_tsv, caplog):
    path = write_tsv(tmp_path / "dev.tsv", ["sentence\tlabel", "a\t1", "", "b\t0", ""])
    with caplog.at_level(logging.WARNING):
        ex = read_glue_tsv(get_task("sst2"), path)
    assert ex.text_a == ["a", "b"] and "ignored 1 blank lines" in caplog.text


def test_load_glue_tsv_rejects_unknown_split(tmp_path):
    with pytest.raises(TfkdError, match="unknown split 'test'"):
        load_glue_tsv(get_task("sst2"), "test", str(tmp_path))
