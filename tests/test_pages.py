"""Loading PDFs and images into pages, and refusing bad input with one clear sentence."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from omr_engine.pages import (
    MAX_PIXELS,
    EncryptedPdfError,
    ImageSizeError,
    InputError,
    Page,
    PageRangeError,
    UnreadableInputError,
    load_pages,
    parse_page_ranges,
)

# --- Building input files ----------------------------------------------------------------


def _png_bytes(array: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **save)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (the pixel data is a token)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _two_page_pdf() -> pymupdf.Document:
    """Page 1: a letter-size scan at 150 dpi (one image, 1275x1650, grey 200).
    Page 2: a born-digital A4 page with five lines and a title."""
    doc = pymupdf.open()
    scan = doc.new_page(width=612, height=792)
    scan.insert_image(scan.rect, stream=_png_bytes(np.full((1650, 1275), 200, np.uint8)))
    vector = doc.new_page(width=595, height=842)
    for i in range(5):
        vector.draw_line((50, 100 + 8 * i), (545, 100 + 8 * i))
    vector.insert_text((50, 60), "Title", fontsize=20)
    return doc


@pytest.fixture
def pdf_path(tmp_path: Path) -> Path:
    path = tmp_path / "score.pdf"
    _two_page_pdf().save(path)
    return path


# --- PDF ---------------------------------------------------------------------------------


def test_pdf_scan_page_keeps_its_resolution_and_vector_page_gets_300_dpi(pdf_path: Path) -> None:
    scan, vector = load_pages(pdf_path)
    assert (scan.index, scan.dpi, scan.image.shape) == (0, 150.0, (1650, 1275))
    assert scan.image.dtype == np.uint8 and abs(int(scan.image.mean()) - 200) <= 1
    assert (vector.index, vector.dpi) == (1, 300.0)
    # MuPDF rounds the page outwards to whole pixels.
    assert np.allclose(vector.image.shape, (842 * 300 / 72, 595 * 300 / 72), atol=1)
    assert vector.image.min() < 100  # the drawn lines and title are there
    assert scan.source == vector.source == pdf_path


def test_pdf_scan_above_600_dpi_is_rendered_at_600(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=72, height=72)  # one inch square
    page.insert_image(page.rect, stream=_png_bytes(np.full((1200, 1200), 128, np.uint8)))
    doc.save(tmp_path / "fine.pdf")
    (only,) = load_pages(tmp_path / "fine.pdf")
    assert only.dpi == 600.0 and only.image.shape == (600, 600)


def test_pdf_page_selection_renders_only_those_pages(pdf_path: Path) -> None:
    assert [p.index for p in load_pages(pdf_path, {1})] == [1]


def test_pdf_with_only_an_owner_password_opens(tmp_path: Path) -> None:
    path = tmp_path / "locked-for-editing.pdf"
    _two_page_pdf().save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner")
    assert len(list(load_pages(path))) == 2


def test_pdf_page_too_large_to_render_is_refused(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page(width=14400, height=1000)  # 200 inches wide: 60000 pixels at 300 dpi
    doc.save(tmp_path / "banner.pdf")
    with pytest.raises(ImageSizeError, match=r"banner\.pdf, page 1: the image is too large"):
        list(load_pages(tmp_path / "banner.pdf"))


# --- Images ------------------------------------------------------------------------------


def test_multi_page_tiff_gives_one_page_per_frame_with_its_dpi(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((30, 20), v, np.uint8)) for v in (10, 100, 200)]
    path = tmp_path / "scan.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(400, 400))
    pages = list(load_pages(path))
    assert [(p.index, p.dpi, int(p.image[0, 0])) for p in pages] == [
        (0, 400.0, 10),
        (1, 400.0, 100),
        (2, 400.0, 200),
    ]
    assert [int(p.image[0, 0]) for p in load_pages(path, {0, 2})] == [10, 200]


def test_image_dpi_comes_from_the_file_or_defaults_to_300(tmp_path: Path) -> None:
    a = np.full((10, 10), 255, np.uint8)
    (tmp_path / "marked.png").write_bytes(_png_bytes(a, dpi=(200, 200)))
    (tmp_path / "unmarked.png").write_bytes(_png_bytes(a))
    assert [p.dpi for p in load_pages(tmp_path / "marked.png")] == [200.0]
    assert [p.dpi for p in load_pages(tmp_path / "unmarked.png")] == [300.0]


def test_jpeg_is_read_as_grayscale(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :, 0] = 255  # red
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    (page,) = load_pages(tmp_path / "photo.jpg")
    assert page.image.ndim == 2 and page.image.dtype == np.uint8
    assert abs(int(page.image.mean()) - 76) <= 3  # ITU-R 601 luma of pure red


def test_transparent_png_is_put_on_white_paper(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, 3] = 255  # top half opaque black, bottom half fully transparent
    (tmp_path / "engraving.png").write_bytes(_png_bytes(rgba))
    (page,) = load_pages(tmp_path / "engraving.png")
    assert page.image[:4].max() == 0 and page.image[4:].min() == 255


def test_16_bit_and_bilevel_images_become_8_bit_grey(tmp_path: Path) -> None:
    deep = np.array([[0, 65535], [32896, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    (page,) = load_pages(tmp_path / "deep.png")
    assert page.image.tolist() == [[0, 255], [128, 255]]
    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "fax.tif")
    (page,) = load_pages(tmp_path / "fax.tif")
    assert page.image.tolist() == [[0, 255]]


def test_exif_orientation_of_a_phone_photo_is_applied(tmp_path: Path) -> None:
    im = Image.fromarray(np.full((10, 30), 255, np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    im.save(tmp_path / "phone.jpg", exif=exif)
    (page,) = load_pages(tmp_path / "phone.jpg")
    assert page.image.shape == (30, 10)


def test_pages_are_frozen() -> None:
    page = Page(np.zeros((1, 1), np.uint8), 300.0, Path("x.png"), 0)
    with pytest.raises(AttributeError):
        page.dpi = 150.0  # type: ignore[misc]


# --- Bad input ---------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _encrypted_pdf() -> bytes:
    buf = io.BytesIO()
    _two_page_pdf().save(buf, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    return buf.getvalue()


def _truncated_pdf() -> bytes:
    data = _two_page_pdf().tobytes()
    return data[: len(data) // 3]


BAD_INPUTS = [
    # (file name, content, error class, exit code, message after "<name>: ")
    ("empty.png", b"", UnreadableInputError, 2, "the file is empty (0 bytes)"),
    ("notes.png", b"these are my notes\n", UnreadableInputError, 2, "not an image or PDF file"),
    (
        "garbage.pdf",
        b"%PDF-1.7\n" + b"garbage" * 100,
        UnreadableInputError,
        2,
        "not a readable PDF",
    ),
    ("truncated.pdf", None, UnreadableInputError, 2, "page 1: the page is damaged"),
    ("secret.pdf", None, EncryptedPdfError, 3, "the PDF is encrypted and needs a password"),
    ("zero.png", _png_header(0, 10), ImageSizeError, 4, "the image is empty (0x10 pixels)"),
    ("bomb.png", _png_header(30000, 30000), ImageSizeError, 4, "the image is too large"),
    ("tall.png", _png_header(100, 25000), ImageSizeError, 4, "the image is too large (100x25000"),
    ("big.png", _png_header(15000, 15000), ImageSizeError, 4, "the image is too large"),
    (
        "cut.png",
        _png_bytes(np.arange(40000, dtype=np.uint8).reshape(200, 200))[:300],
        UnreadableInputError,
        2,
        "the image data is truncated or corrupt",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "error", "code", "message"),
    BAD_INPUTS,
    ids=[row[0] for row in BAD_INPUTS],
)
def test_bad_input_is_refused_with_one_sentence_and_an_exit_code(
    tmp_path: Path, name: str, content: bytes | None, error: type, code: int, message: str
) -> None:
    if content is None:
        content = _encrypted_pdf() if name == "secret.pdf" else _truncated_pdf()
    path = _write(tmp_path, name, content)
    with pytest.raises(error) as caught:
        list(load_pages(path))
    text = str(caught.value)
    assert isinstance(caught.value, InputError)
    assert caught.value.exit_code == code
    assert text.startswith(f"{path}")
    assert message in text
    assert "\n" not in text and "Traceback" not in text
    assert text.count(". ") == 0  # one sentence


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInputError, match="no such file") as caught:
        load_pages(tmp_path / "nowhere.pdf")
    assert caught.value.exit_code == 2
    with pytest.raises(UnreadableInputError, match="not a file"):
        load_pages(tmp_path)


def test_file_problems_are_raised_before_any_page_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "secret.pdf", _encrypted_pdf())
    with pytest.raises(EncryptedPdfError):
        load_pages(path)  # not iterated


def test_page_beyond_the_end_is_refused_naming_the_count(pdf_path: Path) -> None:
    with pytest.raises(
        PageRangeError, match=r"score\.pdf: there is no page 5 \(the file has 2 pages\)"
    ):
        load_pages(pdf_path, {0, 4})


def test_decompression_bomb_guard_is_set_to_our_limit() -> None:
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS


# --- Page ranges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pages"),
    [("1-3,5", {0, 1, 2, 4}), ("2", {1}), (" 4 - 6 , 1 ", {0, 3, 4, 5}), ("3,3,2-3", {1, 2})],
)
def test_page_ranges_are_one_based_in_and_zero_based_out(text: str, pages: set[int]) -> None:
    assert parse_page_ranges(text) == pages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a", "'a' is not a page"),
        ("0", "numbered from 1"),
        ("3-1", "ends before it starts"),
        ("1,,2", "'' is not a page"),
        ("2-", "'2-' is not a page"),
        ("1-2-3", "'1-2-3' is not a page"),
    ],
)
def test_bad_page_range_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PageRangeError, match=message) as caught:
        parse_page_ranges(text)
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, ValueError)


@given(st.sets(st.integers(min_value=0, max_value=500), min_size=1, max_size=40))
def test_page_ranges_round_trip(pages: set[int]) -> None:
    runs: list[list[int]] = []
    for page in sorted(pages):
        if runs and page == runs[-1][-1] + 1:
            runs[-1].append(page)
        else:
            runs.append([page])
    text = ",".join(f"{r[0] + 1}-{r[-1] + 1}" if len(r) > 1 else f"{r[0] + 1}" for r in runs)
    assert parse_page_ranges(text) == pages
