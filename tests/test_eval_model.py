"""benchmarks/eval_model.py counts flagged measures as the page pipeline does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from omr_engine.notation.grammar import Grammar
from omr_engine.notation.score import StaffContext
from omr_engine.notation.vocabulary import default_vocabulary

ROOT = Path(__file__).resolve().parent.parent


def load_eval_model():
    name = "eval_model"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "eval_model.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_a_pickup_is_flagged_only_when_the_line_does_not_open_the_piece():
    vocab = default_vocabulary()
    line = "<clef:G2> <key:0> <time:4/4> <note:G4-quarter> <barline>"
    line += " <note:C5-whole> <barline> <note:D5-half> <note:E5-half> <barline>"
    ids = vocab.encode(line.split())
    flagged = load_eval_model().flagged_measures
    grammar = Grammar(vocab)
    assert flagged(grammar, ids, vocab, StaffContext(), piece_start=True) == (0, 3)
    assert flagged(grammar, ids, vocab, StaffContext(), piece_start=False) == (1, 3)
