"""benchmarks/error_kinds.py names every edit the SER counts, and counts each once."""

from __future__ import annotations

import json

import pytest
from benchmark_modules import load_benchmark

from omr_engine.model.metrics import edit_distance


def test_each_kind_of_note_error_is_named_by_what_differs():
    kinds = load_benchmark("error_kinds")
    ref = "<clef:G2> <note:F#5-quarter> <note:C4-half> <note:E4-eighth> <note:A4-quarter>"
    ref += " <note:B3-16th> <note:D5-quarter> <tie> <rest:quarter> <barline>"
    hyp = "<clef:G2> <note:F5-quarter> <note:C5-half> <note:E4-eighth.> <note:A4-half>"
    hyp += " <note:G3-16th> <note:Eb5-eighth> <note:D5-quarter> <rest:eighth> <barline>"
    counted = kinds.error_kinds(ref.split(), hyp.split())
    assert counted == {
        "note: accidental": 1,
        "note: octave": 1,
        "note: dots": 1,
        "note: value": 1,
        "note: step": 1,
        "extra note": 1,
        "missed tie": 1,
        "rest -> rest": 1,
    }


def test_the_kinds_add_up_to_the_edit_distance_the_ser_counts():
    kinds = load_benchmark("error_kinds")
    ref = "<clef:F4> <key:1b> <note:C3-half> <chord> <note:E3-half> <rest:half> <barline>".split()
    hyp = "<clef:G2> <key:1b> <note:C3-half> <note:E3-half> <rest:half> <rest:half>".split()
    ids: dict[str, int] = {}
    distance = edit_distance(
        [ids.setdefault(t, len(ids)) for t in ref], [ids.setdefault(t, len(ids)) for t in hyp]
    )
    assert sum(kinds.error_kinds(ref, hyp).values()) == distance == 3


def test_a_report_reads_the_readings_an_evaluation_keeps(tmp_path):
    kinds = load_benchmark("error_kinds")
    path = tmp_path / "crops.readings.jsonl"
    rows = [
        {"source": "corpus", "ref": "<note:C4-half> <barline>", "read": "<note:C4-half> <barline>"},
        {"source": "generated", "ref": "<note:C4-half> <barline>", "read": "<note:D4-half>"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = kinds.report(kinds.load_rows(path), by="source", top=5)
    assert "all: 2 errors over 4 reference tokens (SER 0.500)" in text
    assert "source generated: 2 errors over 2 reference tokens" in text
    assert "| note: step | 1 | 50.0% | 0.2500 |" in text
    assert "| missed barline | 1 | 50.0% | 0.2500 |" in text


def test_a_report_reads_the_pages_the_engraver_benchmark_keeps(tmp_path):
    kinds = load_benchmark("error_kinds")
    path = tmp_path / "pages.json"
    pages = [
        {
            "engraver": "lilypond",
            "ref": "<note:C4-half> <tie> <note:C4-half>",
            "read": "<note:C4-half> <note:C4-half>",
        },
        {"engraver": "musescore", "ref": "<note:E4-whole>", "read": "<note:E4-whole>"},
    ]
    path.write_text(json.dumps({"summaries": [], "pages": pages}))
    text = kinds.report(kinds.load_rows(path), by="engraver", top=5)
    assert "all: 1 errors over 4 reference tokens" in text
    assert "engraver lilypond: 1 errors over 3 reference tokens" in text
    assert "| missed tie | 1 | 100.0% |" in text


def test_a_missing_readings_file_is_a_one_line_error(tmp_path):
    kinds = load_benchmark("error_kinds")
    with pytest.raises(SystemExit, match="cannot read it"):
        kinds.load_rows(tmp_path / "absent.json")
