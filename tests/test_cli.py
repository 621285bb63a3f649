"""The `deepmusic-ocr` verbs of the foundation: validate, tokens, convert."""

from __future__ import annotations

import subprocess
import sys

import pytest

from omr_engine.cli import main
from omr_engine.notation.music21_io import write_musicxml
from omr_engine.notation.tokens import tokens_to_score


def write_tokens(path, tokens: str):
    write_musicxml(tokens_to_score(tokens.split()), path)
    return path


def test_validate_accepts_a_correct_piece(corpus_path, capsys):
    assert main(["validate", str(corpus_path("bach/bwv66.6"))]) == 0
    assert "0 invalid" in capsys.readouterr().err


def test_validate_prints_each_invalid_measure_with_its_reason_and_exits_1(tmp_path, capsys):
    path = write_tokens(
        tmp_path / "bad.musicxml",
        "<clef:G2> <time:3/4> <note:C5-half.> <barline> <note:C5-half> <note:D5-half> <barline> "
        "<note:E5-half.> <barline>",
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "measure 2, staff 1: 4 beats in a 3/4 measure" in out


def test_validate_gives_one_line_and_exit_2_for_a_malformed_file(tmp_path):
    bad = tmp_path / "broken.musicxml"
    bad.write_text("<score-partwise><part id='P1'><measure")
    run = subprocess.run(
        [sys.executable, "-m", "omr_engine.cli", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "broken.musicxml" in run.stderr
    assert "Traceback" not in run.stderr


def test_validate_reports_a_missing_file_with_exit_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.xml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_tokens_prints_one_measure_per_line(corpus_path, capsys):
    assert main(["tokens", str(corpus_path("bach/bwv66.6"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[0].split()[1] == "<clef:G2>"


def test_convert_never_overwrites_without_force(corpus_path, tmp_path, capsys):
    out = tmp_path / "piece.mei"
    out.write_text("mine")
    assert main(["convert", str(corpus_path("bach/bwv66.6")), str(out)]) == 5
    assert out.read_text() == "mine"
    assert main(["convert", str(corpus_path("bach/bwv66.6")), str(out), "--force"]) == 0
    assert "<mei" in out.read_text()
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("option", [["--beam", "0"], ["--beam", "two"]])
def test_a_beam_below_one_is_refused_in_one_line(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", "page.png", "-o", str(tmp_path / "out.musicxml"), *option])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--beam" in err and "Traceback" not in err
