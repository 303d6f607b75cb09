"""A user's CSV that is empty, binary or ragged is refused with the file and the line named, never misread."""

from __future__ import annotations

import gzip
import io
import re

import pytest

from sh_scaling.cli import main
from sh_scaling.curves import load_csv

HEADER = "run_id,compute,loss\n"

RAGGED = [
    # An extra field in the first data row: pandas would take run_id for a row index and shift every column.
    (HEADER + "a,1,3.0,7\na,2,2.5\n", "line 2 has 4 fields, the header has 3"),
    # A trailing comma on every row: the same shift, silently.
    (HEADER + "a,1,3.0,\na,2,2.5,\n", "line 2 has 4 fields, the header has 3"),
    (HEADER + "a,1,3.0\na,2,2.5,9\n", "line 3 has 4 fields, the header has 3"),
    # A missing field: pandas would pad it and the point would vanish as a "non-finite" loss.
    (HEADER + "a,1,3.0\n\na,2\nb,1,3.2\n", "line 4 has 2 field(s), the header has 3"),
]


@pytest.mark.parametrize(("text", "message"), RAGGED)
def test_a_ragged_row_is_reported_with_its_line(tmp_path, text, message):
    path = tmp_path / "sweep.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        load_csv(path)
    with pytest.raises(ValueError, match=re.escape(f"csv: {message}")):
        load_csv(io.StringIO(text))


def test_empty_fields_are_still_missing_values_not_ragged_rows():
    with pytest.warns(UserWarning, match="dropped 1 non-finite"):
        curves = load_csv(io.StringIO(HEADER + "a,1,3.0\na,2,\nb,1,3.2\n"))
    assert curves.get("a").loss.tolist() == [3.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty (no header line)"),
        (b"\n\n", "the file is empty (no header line)"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
            "not a UTF-8 text file (it holds the byte b'\\x89')",
        ),
        (bytes(range(256)) * 4, "binary data, not a CSV text file"),
        ("run_id,compute,loss\nré,1,2\n".encode("latin-1"), "not a UTF-8 text file (it holds the byte b'\\xe9')"),
    ],
    ids=["empty", "blank-lines", "png", "binary", "latin-1"],
)
def test_empty_and_binary_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "sweep.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        load_csv(path)


def test_a_damaged_compressed_file_names_the_file(tmp_path):
    path = tmp_path / "sweep.csv.gz"
    rows = "".join(f"a,{i},{1 + 1 / (i + 1)!r}\n" for i in range(2000))  # not too compressible
    data = gzip.compress((HEADER + rows).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(f"{path}: cannot read the file")):
        load_csv(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\x00\x01\x02\xff" * 64, "not a UTF-8"),
        (HEADER.encode() + b"a,1,3.0,7\n", "line 2 has 4 fields"),
    ],
    ids=["empty", "binary", "ragged"],
)
def test_cli_bad_csv_is_one_line_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "sweep.csv"
    path.write_bytes(content)
    assert main(["simulate", "--curves", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"sh-scaling simulate: error: {path}: {message}")
