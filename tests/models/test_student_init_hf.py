"""`--student_init=<Hugging Face BERT directory>`: accepted with the teacher's vocabulary, refused otherwise."""

import numpy as np
import pytest
from hf_reference import write_classifier

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.models.sources import load_teacher
from tfkd.models.student import StudentShape, build_student, initialize_from, load_init_source


def test_hf_directory_with_the_teachers_vocabulary_initialises_the_student(tmp_path):
    write_classifier(str(tmp_path / "teacher"), ["negative", "positive"])
    weights = write_classifier(str(tmp_path / "compact"), ["negative", "positive"])
    teacher = load_teacher(str(tmp_path / "teacher"), num_classes=2)
    source = load_init_source(str(tmp_path / "compact"), teacher.vocab_path)
    student = build_student(StudentShape(num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32), like=teacher.model)
    initialize_from(student, source, [1, 2])
    np.testing.assert_array_equal(student.get_layer("token_embedding").get_weights()[0],
                                  weights["bert.embeddings.word_embeddings.weight"])


def test_hf_directory_with_another_vocabulary_is_refused(tmp_path):
    write_classifier(str(tmp_path / "teacher"), ["negative", "positive"])
    write_classifier(str(tmp_path / "other"), ["negative", "positive"])
    with open(tmp_path / "other" / "vocab.txt", "a") as f:
        f.write("extra\n")
    teacher = load_teacher(str(tmp_path / "teacher"), num_classes=2)
    with pytest.raises(TfkdError, match=r"has another vocabulary than the teacher: .*tokens, sha256 .*Fix"):
        load_init_source(str(tmp_path / "other"), teacher.vocab_path)
    with pytest.raises(TfkdError, match="is not pretrained, teacher, random or an existing directory. Fix"):
        load_init_source(str(tmp_path / "missing"), teacher.vocab_path)
