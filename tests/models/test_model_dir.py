import json

import pytest

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.models import ModelMetadata, read_metadata


def test_metadata_reads_back_and_a_damaged_or_foreign_file_is_refused(tmp_path):
    (tmp_path / "tfkd_model.json").write_text(json.dumps({"task": "mrpc", "role": "student", "max_seq_length": 64}))
    assert read_metadata(str(tmp_path)) == ModelMetadata(task="mrpc", role="student", max_seq_length=64)
    assert read_metadata(str(tmp_path / "absent")) is None
    (tmp_path / "tfkd_model.json").write_text('{"task": "mrpc",')
    with pytest.raises(TfkdError, match=r"is not a tfkd model description \(Expecting property name.*Fix: restore it"):
        read_metadata(str(tmp_path))
    (tmp_path / "tfkd_model.json").write_text(json.dumps({"task": "mrpc", "colour": "blue"}))
    with pytest.raises(TfkdError, match="is not a tfkd model description .*colour"):
        read_metadata(str(tmp_path))
