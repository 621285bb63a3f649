"""A staff's tokens are cut into the measures the layout found, using where the CTC decoder
read each token: extra and missing barlines are mended, and the reviewer is told."""

from __future__ import annotations

import pytest

from omr_engine.inference.measures import DISAGREEMENT_CONFIDENCE, fit_to_measures
from omr_engine.notation.vocabulary import default_vocabulary

VOCAB = default_vocabulary()
THREE = [(0.0, 0.4), (0.4, 0.7), (0.7, 1.0)]  # the layout's measures, as crop fractions


def fit(tokens_at: list[tuple[str, float]], measures=THREE):
    ids = [VOCAB.id(t) for t, _ in tokens_at]
    ids2, conf, origin = fit_to_measures(
        ids, [0.9] * len(ids), [x for _, x in tokens_at], measures, VOCAB
    )
    # Every token kept is one that was read; only inserted barlines come from nowhere.
    for new, source in zip(ids2, origin, strict=True):
        assert new == ids[source] if source >= 0 else VOCAB.decode([new]) == ["<barline>"]
    return VOCAB.decode(ids2), conf


def test_tokens_that_agree_with_the_layout_pass_unchanged():
    read = [
        ("<clef:G2>", 0.02),
        ("<note:C5-half>", 0.2),
        ("<barline>", 0.41),
        ("<note:D5-half>", 0.55),
        ("<barline:double>", 0.69),
        ("<note:E5-half>", 0.85),
        ("<barline:final>", 0.99),
    ]
    tokens, conf = fit(read)
    assert tokens == [t for t, _ in read]
    assert conf == [0.9] * len(read)


def test_a_barline_the_model_missed_is_put_where_the_notes_cross_it():
    tokens, conf = fit(
        [
            ("<note:C5-half>", 0.2),
            ("<note:D5-half>", 0.55),  # no barline read at 0.4
            ("<barline>", 0.7),
            ("<note:E5-half>", 0.85),
            ("<barline>", 0.99),
        ]
    )
    assert tokens == (
        "<note:C5-half> <barline> <note:D5-half> <barline> <note:E5-half> <barline>".split()
    )
    assert conf[:2] == [DISAGREEMENT_CONFIDENCE] * 2  # the mended measure is flagged
    assert conf[2:] == [0.9] * 4


def test_a_missed_barline_does_not_part_a_chord_or_a_tie_from_its_note():
    tokens, _ = fit(
        [
            ("<note:C5-half>", 0.36),
            ("<chord>", 0.39),
            ("<note:E5-half>", 0.42),  # the chord's note, read just past the layout's 0.4
            ("<tie>", 0.43),
            ("<note:E5-half>", 0.55),
            ("<barline>", 0.7),
            ("<note:F5-half>", 0.85),
            ("<barline>", 0.99),
        ]
    )
    assert (
        tokens
        == (
            "<note:C5-half> <chord> <note:E5-half> <tie> <barline> <note:E5-half> <barline> "
            "<note:F5-half> <barline>"
        ).split()
    )


def test_a_barline_the_layout_did_not_see_is_dropped():
    tokens, _ = fit(
        [
            ("<note:C5-quarter>", 0.1),
            ("<barline>", 0.2),  # a stem read as a barline
            ("<note:C5-quarter>", 0.3),
            ("<barline>", 0.4),
            ("<note:D5-half>", 0.55),
            ("<barline>", 0.7),
            ("<note:E5-half>", 0.85),
            ("<barline>", 0.99),
        ]
    )
    assert tokens.count("<barline>") == 3
    assert tokens[:3] == ["<note:C5-quarter>", "<note:C5-quarter>", "<barline>"]


def test_what_is_read_past_the_last_measure_is_dropped_and_a_missing_end_is_closed():
    tokens, _ = fit(
        [
            ("<note:C5-half>", 0.2),
            ("<barline>", 0.4),
            ("<note:D5-half>", 0.55),
            ("<barline>", 0.7),
            ("<note:E5-half>", 0.85),  # the final barline not read
        ]
    )
    assert tokens[-1] == "<barline>" and tokens.count("<barline>") == 3
    extra, _ = fit(
        [
            ("<note:C5-half>", 0.2),
            ("<barline>", 0.4),
            ("<note:D5-half>", 0.55),
            ("<barline>", 0.7),
            ("<note:E5-half>", 0.85),
            ("<barline>", 0.97),
            ("<note:F5-half>", 0.995),  # a neighbour's note at the crop's edge
        ],
        [(0.0, 0.4), (0.4, 0.7), (0.7, 0.97)],
    )
    assert extra[-2:] == ["<note:E5-half>", "<barline>"]


@pytest.mark.parametrize("positions", [[], None])
def test_without_positions_or_measures_nothing_changes(positions):
    ids = VOCAB.encode("<note:C5-whole> <barline> <note:C5-whole>".split())
    got = fit_to_measures(
        ids, [0.5] * 3, positions or [], THREE if positions is None else [], VOCAB
    )
    assert got == (ids, [0.5] * 3, [0, 1, 2])


def test_a_barline_read_on_most_staves_is_added_to_the_layouts():
    from omr_engine.inference.measures import add_read_barlines

    edges = [100.0, 300.0]  # the layout found one barline at 100 and the end at 300
    read = [[(100.0, 0.9), (201.0, 0.9)], [(99.0, 0.9), (199.0, 0.8)], [(101.0, 0.9)]]
    assert add_read_barlines(edges, read, space=10.0, start=0.0) == [100.0, 200.0, 300.0]
    # On one staff of three it is a stem misread; near a known barline it is that one.
    assert add_read_barlines(edges, [read[0], [], []], 10.0, 0.0) == edges
    assert add_read_barlines(edges, [[(115.0, 0.9)]] * 3, 10.0, 0.0) == edges
    # A lone staff needs the model to be sure.
    assert add_read_barlines(edges, [[(200.0, 0.95)]], 10.0, 0.0) == [100.0, 200.0, 300.0]
    assert add_read_barlines(edges, [[(200.0, 0.6)]], 10.0, 0.0) == edges
    # A closing repeat sign is read at its dots, short of the system's end: not a measure.
    assert add_read_barlines(edges, [[(275.0, 0.99)]] * 3, 10.0, 0.0) == edges


def test_a_closing_barline_read_before_a_courtesy_signature_opens_no_empty_measure():
    from omr_engine.inference.measures import add_read_barlines

    # The layout ends the last measure at the system's end (300), past a courtesy time
    # signature; both staves read the closing barline at 250 and no note after it.
    edges, read = [100.0, 300.0], [[(100.0, 0.9), (250.0, 0.9)]] * 2
    notes = [[20.0, 60.0, 150.0, 230.0], [40.0, 180.0]]
    assert add_read_barlines(edges, read, 10.0, 0.0, staff_events=notes) == edges
    # With a note read after it, it ends a measure the layout missed.
    later = [[20.0, 150.0, 270.0], [40.0, 180.0]]
    assert add_read_barlines(edges, read, 10.0, 0.0, staff_events=later) == [100.0, 250.0, 300.0]


def test_a_sliver_after_a_final_barline_or_a_courtesy_key_makes_no_closing_measure():
    from omr_engine.inference.measures import drop_empty_ends

    # The layout ends the system at 809, past a final barline whose thin stroke (775) it
    # took for the last measure's end; both staves read their last note at 760.
    notes = [[100.0, 420.0, 760.0], [150.0, 600.0]]
    assert drop_empty_ends([400.0, 775.0, 809.0], notes, space=10.0, start=40.0) == [400.0, 775.0]
    # A note read a staff space into the closing measure makes it a measure.
    last = [[100.0, 420.0, 760.0], [150.0, 600.0, 785.0]]
    assert drop_empty_ends([400.0, 775.0, 809.0], last, 10.0, 40.0) == [400.0, 775.0, 809.0]
    # So does a whole-measure rest (the pipeline counts it among the events).
    assert drop_empty_ends([400.0, 775.0, 900.0], [[100.0, 420.0, 840.0]], 10.0, 40.0) == [
        400.0,
        775.0,
        900.0,
    ]
    # One read right at the barline is the last measure's note, read half a space late.
    late = [[100.0, 420.0, 778.0]]
    assert drop_empty_ends([400.0, 775.0, 809.0], late, 10.0, 40.0) == [400.0, 775.0]


def test_a_repeat_sign_after_the_header_opens_no_measure_of_its_own():
    from omr_engine.inference.measures import drop_empty_ends

    # Clef, key and time from 44 to 190, a start-repeat at 203 the layout took for a
    # barline: the staves read their first note at 230.
    notes = [[230.0, 300.0, 520.0], [250.0, 560.0]]
    assert drop_empty_ends([203.0, 491.0, 813.0], notes, 10.0, 44.0) == [491.0, 813.0]
    # A pickup read before it stays a measure.
    pickup = [[150.0, 230.0, 520.0], [250.0, 560.0]]
    assert drop_empty_ends([203.0, 491.0, 813.0], pickup, 10.0, 44.0) == [203.0, 491.0, 813.0]
    # A one-measure system is left whole, read or not.
    assert drop_empty_ends([813.0], [[]], 10.0, 44.0) == [813.0]
    assert drop_empty_ends([203.0, 813.0], [[]], 10.0, 44.0) == [813.0]


def test_a_final_barline_read_on_the_thick_stroke_closes_the_staff_once_the_sliver_is_gone():
    # The staff's tokens fitted to the measures left once the sliver (0.95-1.0) is dropped:
    # the final barline read at 0.955 closes the last measure with its kind.
    read = [
        ("<clef:G2>", 0.02),
        ("<note:C5-half>", 0.2),
        ("<barline>", 0.41),
        ("<note:D5-half>", 0.8),
        ("<barline:final>", 0.955),
    ]
    tokens, _ = fit(read, measures=[(0.0, 0.4), (0.4, 0.95)])
    assert tokens == [
        "<clef:G2>",
        "<note:C5-half>",
        "<barline>",
        "<note:D5-half>",
        "<barline:final>",
    ]
    with_sliver, _ = fit(read, measures=[(0.0, 0.4), (0.4, 0.95), (0.95, 1.0)])
    assert with_sliver[-2:] == ["<barline:final>", "<barline>"]  # the empty measure it was


def test_a_stroke_no_staff_read_as_a_barline_is_dropped_from_the_layouts():
    from omr_engine.inference.measures import drop_unread_barlines

    # Measures 30 wide; the layout also took a stem at 40 for a barline.
    edges = [30.0, 40.0, 60.0, 90.0, 120.0]
    read = [[(30.0, 0.99), (60.0, 0.99), (90.0, 0.98), (120.0, 0.99)]]
    assert drop_unread_barlines(edges, read, space=2.0, start=0.0) == [30.0, 60.0, 90.0, 120.0]
    # A barline between two ordinary measures the model missed stays: it may be real.
    even = [30.0, 60.0, 90.0, 120.0]
    missed = [[(30.0, 0.99), (90.0, 0.99), (120.0, 0.99)]]
    assert drop_unread_barlines(even, missed, 2.0, 0.0) == even
    # When the staves miss other barlines too, the model is not to be trusted here.
    blind = [[(30.0, 0.99), (120.0, 0.99)]]
    assert drop_unread_barlines(edges, blind, 2.0, 0.0) == edges


def test_notes_read_before_an_opening_repeat_make_it_end_a_pickup():
    from omr_engine.inference.measures import split_pickup

    # The layout let the repeat barline at 95 open the first measure (it ends at 200).
    edges, barlines = [200.0, 300.0], [95.0, 200.0, 300.0]
    pickup = [[60.0, 75.0, 120.0, 150.0]]  # two notes before the repeat, then the measure
    assert split_pickup(edges, barlines, pickup, space=10.0, start=0.0) == [95.0, 200.0, 300.0]
    # Nothing read before it but the header: a section start, as the layout had it.
    assert split_pickup(edges, barlines, [[120.0, 150.0]], 10.0, 0.0) == edges
    # A note read right at the barline is its own misplacement, not a pickup.
    assert split_pickup(edges, barlines, [[93.0, 120.0]], 10.0, 0.0) == edges
    # On most staves, not one of three.
    assert split_pickup(edges, barlines, [pickup[0], [120.0], [130.0]], 10.0, 0.0) == edges
    assert split_pickup(edges, barlines, [pickup[0], pickup[0], [130.0]], 10.0, 0.0) == [
        95.0,
        200.0,
        300.0,
    ]
    # No barline between the header and the first measure end: nothing to split.
    assert split_pickup(edges, [200.0, 300.0], pickup, 10.0, 0.0) == edges


def test_systems_whose_staves_read_the_same_barlines_are_joined():
    from omr_engine.inference.measures import join_read_systems

    def staff(top: float, x0: float = 0.0) -> tuple[float, float, float, float]:
        return (x0, top, 1000.0, top + 40.0)

    # A system of two staves (gap 60), then a staff 60 below it and one 200 below that.
    staves = [[staff(0), staff(100)], [staff(200, x0=300.0)], [staff(440)]]
    bars = [250.0, 500.0, 750.0, 1000.0]
    read = [[bars, bars], [bars[1:]], [bars]]
    assert join_read_systems(staves, read, space=10.0) == [[0, 1], [2]]
    # Barlines that do not line up: a separate system.
    other = [[bars, bars], [[400.0, 620.0, 880.0]], [bars]]
    assert join_read_systems(staves, other, 10.0) == [[0], [1], [2]]
    # A staff set far apart inside a system does not make every gap on the page narrow.
    # (gaps of 20 between its staves, but 460 above the last)
    apart = [[staff(0), staff(60), staff(120), staff(620)], [staff(720)]]
    four = [[bars] * 4, [bars]]
    assert join_read_systems(apart, four, 10.0) == [[0], [1]]
    assert join_read_systems([apart[0], [staff(682)]], four, 10.0) == [[0, 1]]
    # Two systems of three staves each, measures lined up: an ensemble's two systems.
    choir = [[staff(0), staff(60), staff(120)], [staff(190), staff(250), staff(310)]]
    assert join_read_systems(choir, [[bars] * 3, [bars] * 3], 10.0) == [[0], [1]]
    # ... but two of two staves, where another system has four, are a system split in half
    halves = [choir[0] + [staff(180)], [staff(290), staff(350)], [staff(410), staff(470)]]
    read = [[bars] * 4, [bars] * 2, [bars] * 2]
    assert join_read_systems(halves, read, 10.0) == [[0], [1, 2]]
    assert join_read_systems(halves[1:], read[1:], 10.0) == [[0], [1]]
    split = [[staff(0), staff(60)], [staff(120)], [staff(180), staff(240), staff(300)]]
    assert join_read_systems(split, [[bars] * 2, [bars], [bars] * 3], 10.0) == [[0, 1], [2]]
    # No system of several staves on the page: a grand staff's staves stand 5 to 6.5
    # spaces apart, a one-staff part's lines 8 or more.
    assert join_read_systems([[staff(0)], [staff(90)]], [[bars], [bars]], 10.0) == [[0, 1]]
    assert join_read_systems([[staff(0)], [staff(120)]], [[bars], [bars]], 10.0) == [[0], [1]]
    assert join_read_systems([[staff(0)], [staff(90)]], other[1:3], 10.0) == [[0], [1]]


def test_merged_systems_keep_every_staff_and_each_barline_once():
    from omr_engine.layout import Staff, System
    from omr_engine.layout.systems import merge_systems

    def system(top: float, x0: float, ends: list[float]) -> System:
        staff = Staff(top, top + 40.0, tuple(top + 10.0 * k for k in range(5)), x0, 1000.0, 10.0)
        edges = [x0, *ends]
        boxes = [(a, top, b, top + 40.0) for a, b in zip(edges, edges[1:], strict=False)]
        return System([staff], (x0, top, 1000.0, top + 40.0), ends[:-1], boxes)

    merged = merge_systems(
        [system(0.0, 20.0, [300.0, 600.0, 1000.0]), system(100.0, 400.0, [603.0, 1000.0])]
    )
    assert len(merged.staves) == 2 and merged.box == (20.0, 0.0, 1000.0, 140.0)
    assert [b[2] for b in merged.measure_boxes] == [300.0, 600.0, 1000.0]
    assert merged.barlines_x == [300.0, 600.0]
