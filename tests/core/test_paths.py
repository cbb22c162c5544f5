"""A path that must become a directory is checked up to its first existing parent, before any work."""

import pytest

from tfkd.core.errors import TfkdError, command_context
from tfkd.core.paths import check_directory_target


def test_a_path_that_must_be_a_directory_is_checked_up_to_its_first_existing_parent(tmp_path):
    (tmp_path / "file").write_text("x")
    check_directory_target(str(tmp_path / "new" / "deeper"), "--workdir")
    check_directory_target(str(tmp_path), "--workdir")
    with pytest.raises(TfkdError, match=r"^workdir=.*/file is a file, not a directory. Fix: "):
        check_directory_target(str(tmp_path / "file"), "--workdir")
    # As a command prints it: ExportOptions registers export_dir only once tfkd.export is imported.
    with command_context(), pytest.raises(TfkdError, match=r"--export_dir=.*/file/out is inside the file .*/file, not a directory"):
        check_directory_target(str(tmp_path / "file" / "out"), "--export_dir")
