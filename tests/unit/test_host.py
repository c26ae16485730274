"""Which parts of a BoxRun kernel cell run on the host."""

from __future__ import annotations

import pytest

from boxrun_kernel.host import MisplacedMagic, split_cell


def test_plain_code_goes_to_the_box_untouched() -> None:
    code = "x = '%boxrunner'\nprint(x)"
    assert split_cell(code).code == code and not split_cell(code).magics


def test_leading_magics_run_first_and_stay_as_comments() -> None:
    cell = split_cell("# set up\n%boxrun use other\n  %boxrun ls -q\n\nprint(1)")
    assert cell.magics == ["use other", "ls -q"] and not cell.host_only
    assert cell.code == "# set up\n# %boxrun use other\n#   %boxrun ls -q\n\nprint(1)"
    only = split_cell("%boxrun?\n# nothing else")
    assert only.magics == ["?"] and only.host_only


def test_cell_magic_names_the_box() -> None:
    assert split_cell("%%boxrun other\ny = 1").box == "other"
    assert split_cell("%%boxrun other\ny = 1").code == "y = 1"
    assert split_cell("%%boxrun\ny = 1").box is None
    with pytest.raises(MisplacedMagic, match="one box name"):
        split_cell("%%boxrun a b\n1")


def test_a_magic_after_code_is_refused_but_nested_lines_are_the_box_s() -> None:
    with pytest.raises(MisplacedMagic, match="move line 2"):
        split_cell("print(1)\n%boxrun ls")
    nested = "if True:\n    %boxrun ls"
    assert split_cell(nested).code == nested
