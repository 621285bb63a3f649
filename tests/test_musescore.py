"""MuseScore 3 opens what we export: the real program converts our MusicXML and MXL to its own
format and keeps every note. CI installs Debian's musescore3 so this runs there."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from omr_engine.notation.music21_io import read_score, write_musicxml
from omr_engine.notation.score import Note, Tuplet

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "bwv66.6.musicxml"
MSCORE = shutil.which("mscore3") or shutil.which("musescore3")

pytestmark = pytest.mark.skipif(MSCORE is None, reason="MuseScore 3 is not installed")


def note_count(score) -> int:
    count = 0
    for measure in score.measures:
        for staff in measure.staves:
            for voice in staff.voices:
                for event in voice:
                    inner = event.events if isinstance(event, Tuplet) else [event]
                    count += sum(len(e.pitches) for e in inner if isinstance(e, Note))
    return count


def musescore_notes(source: Path, tmp_path: Path) -> int:
    out = tmp_path / "converted.mscz"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run(
        [MSCORE, "-o", str(out), str(source)], env=env, capture_output=True, timeout=120
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-400:]
    with zipfile.ZipFile(out) as z:
        name = next(n for n in z.namelist() if n.endswith(".mscx"))
        return z.read(name).decode("utf-8").count("<Note>")


@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_musescore_opens_our_export_with_every_note(tmp_path, suffix):
    score, _ = read_score(SAMPLE)
    exported = tmp_path / f"export{suffix}"
    write_musicxml(score, exported)
    assert musescore_notes(exported, tmp_path) == note_count(score) == 165
