"""A path that must become a directory is checked up to its first existing parent, before any work."""

import pytest

from tfkd.core.errors import TfkdError
from tfkd.core.paths import check_directory_target


def test_a_path_that_must_be_a_directory_is_checked_up_to_its_first_existing_parent(tmp_path):
    (tmp_path / "file").write_text("x")
    check_directory_target(str(tmp_path / "new" / "deeper"), "--workdir")
    check_directory_target(str(tmp_path), "--workdir")
    with pytest.raises(TfkdError, match=r"--workdir=.*/file is a file, not a directory. Fix: "):
        check_directory_target(str(tmp_path / "file"), "--workdir")
    with pytest.raises(TfkdError, match=r"--export_dir=.*/file/out is inside the file .*/file, not a directory"):
        check_directory_target(str(tmp_path / "file" / "out"), "--export_dir")
