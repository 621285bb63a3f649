"""Loading input files into pages: one grayscale image and its resolution per page.

PDF pages are rendered with pymupdf: a page that is one scanned image is rendered at that
image's own resolution (at most 600 dpi, at least 72), any other page at 300 dpi. Raster
images (PNG, JPEG, TIFF including multi-page TIFF, BMP, WebP, JPEG 2000) are read with
Pillow; their resolution comes from the file (300 dpi when it says nothing usable). A
phone photo is straightened and its lighting evened on the way in
(:func:`omr_engine.layout.photo.correct_photo`; ``Page.corrections`` says what was done),
so every later stage, and the studio, sees the flat sheet.

Every problem a user can cause is an :class:`InputError` whose message is one sentence
naming the file (and page), and whose ``exit_code`` tells a command line what happened:

====  =================================================================
2     unreadable input: missing, empty, not an image or PDF, corrupt,
      a page that does not exist or a malformed page range
3     an encrypted PDF that needs a password
4     an image (or rendered PDF page) too large, or with no pixels or
      no pages at all
====  =================================================================

Pillow's decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is set to this module's
limit, so an oversized image is refused by its header before any pixel is decoded; the
warning Pillow gives below twice the limit is turned into the same refusal.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image, ImageOps, UnidentifiedImageError

from .layout.photo import correct_photo

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "EncryptedPdfError",
    "ImageSizeError",
    "InputError",
    "Page",
    "PageRangeError",
    "UnreadableInputError",
    "load_pages",
    "parse_page_ranges",
]

MAX_PIXELS = 200_000_000  # per page; an A0 poster at 300 dpi is 140 megapixels
MAX_SIDE = 20_000  # pixels on either side
PDF_DPI = 300.0  # vector (born-digital) PDF pages
MAX_SCAN_DPI = 600.0  # a scanned PDF page is rendered at its image's resolution, capped
MIN_SCAN_DPI = 72.0
DEFAULT_DPI = 300.0  # an image file that does not say
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "JPEG2000")

# The header check refuses what our own check would; see the module docstring.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True, eq=False)
class Page:
    """One page: ``image`` is grayscale uint8 (H, W), dark ink on light paper; ``index``
    is the 0-based page number within ``source``; ``corrections`` names what was done to
    a photographed page (empty for a scan or a PDF)."""

    image: np.ndarray
    dpi: float
    source: Path
    index: int
    corrections: tuple[str, ...] = ()


class InputError(Exception):
    """A file, page or page range the program cannot use; the message is one sentence
    for the user. ``exit_code`` is 2 here; subclasses say 3 and 4."""

    exit_code: int = 2

    def __init__(self, message: str, path: Path | None = None, page: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.page = page

    @classmethod
    def about(cls, path: Path, problem: str, page: int | None = None) -> InputError:
        """``"<file>: <problem>"`` or ``"<file>, page <n>: <problem>"`` (n is 1-based)."""
        where = _display(path) if page is None else f"{_display(path)}, page {page + 1}"
        return cls(f"{where}: {problem}", path, page)


class UnreadableInputError(InputError):
    """Missing, empty, undecodable or corrupt input (exit code 2)."""

    exit_code = 2


class EncryptedPdfError(InputError):
    """A PDF that cannot be opened without a password (exit code 3)."""

    exit_code = 3


class ImageSizeError(InputError):
    """An image too large to process, or with nothing in it (exit code 4)."""

    exit_code = 4


class PageRangeError(InputError, ValueError):
    """A malformed page range, or a page the file does not have (exit code 2)."""

    exit_code = 2


def parse_page_ranges(text: str) -> set[int]:
    """Pages named as on a print dialog, ``"1-3,5"``, as 0-based indices ``{0, 1, 2, 4}``.

    Items are separated by commas; each is a page number or an inclusive range ``a-b``
    with 1 <= a <= b. Spaces are ignored. Raises PageRangeError for anything else.
    """
    pages: set[int] = set()
    items = [item.strip() for item in text.split(",")]
    if not text.strip():
        raise PageRangeError("the page range is empty; give pages like 1-3,5")
    for item in items:
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", item)
        if m is None:
            raise PageRangeError(
                f"invalid page range {text!r}: {item!r} is not a page or a range like 2-5"
            )
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if first < 1:
            raise PageRangeError(f"invalid page range {text!r}: pages are numbered from 1")
        if last < first:
            raise PageRangeError(f"invalid page range {text!r}: {item!r} ends before it starts")
        pages.update(range(first - 1, last))
    return pages


def load_pages(path: Path | str, pages: set[int] | None = None) -> Iterator[Page]:
    """The pages of a PDF or image file, in order; only those in ``pages`` (0-based) when
    given.

    The file is opened and checked before this returns, so a missing, corrupt or
    encrypted file, and a page the file does not have, raise InputError here; a page that
    turns out too large or undecodable raises when it is reached.
    """
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    if b"%PDF-" in head:
        return _pdf_pages(path, pages)
    return _image_pages(path, pages)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UnreadableInputError.about(path, "no such file")
    if not path.is_file():
        raise UnreadableInputError.about(path, "not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as e:
        raise UnreadableInputError.about(path, f"cannot be read ({e.strerror or e})") from e
    if size == 0:
        raise UnreadableInputError.about(path, "the file is empty (0 bytes)")


def _selected(path: Path, count: int, pages: set[int] | None) -> list[int]:
    if pages is None:
        return list(range(count))
    missing = sorted(p for p in pages if not 0 <= p < count)
    if missing:
        n = missing[0] + 1
        noun = "page" if count == 1 else "pages"
        raise PageRangeError.about(path, f"there is no page {n} (the file has {count} {noun})")
    return sorted(pages)


# --- PDF ---------------------------------------------------------------------------------


def _pdf_pages(path: Path, pages: set[int] | None) -> Iterator[Page]:
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as e:  # pymupdf raises FileDataError, RuntimeError, ValueError...
        raise UnreadableInputError.about(path, "not a readable PDF (the file is corrupt)") from e
    try:
        if doc.needs_pass and not doc.authenticate(""):
            raise EncryptedPdfError.about(path, "the PDF is encrypted and needs a password")
        if doc.page_count == 0:
            raise ImageSizeError.about(path, "the PDF has no pages")
        selected = _selected(path, doc.page_count, pages)
    except BaseException:
        doc.close()
        raise
    return _render_pdf(doc, path, selected)


def _render_pdf(doc: pymupdf.Document, path: Path, selected: list[int]) -> Iterator[Page]:
    try:
        for index in selected:
            try:
                page = doc[index]
                dpi = _scan_dpi(page) or PDF_DPI
            except Exception as e:
                raise UnreadableInputError.about(path, "the page is corrupt", index) from e
            rect = page.rect
            _check_size(path, rect.width * dpi / 72.0, rect.height * dpi / 72.0, index)
            if doc.is_repaired:
                pymupdf.TOOLS.mupdf_warnings(reset=True)
            try:
                zoom = dpi / 72.0
                pix = page.get_pixmap(
                    matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csGRAY, alpha=False
                )
            except Exception as e:
                raise UnreadableInputError.about(path, "the page cannot be rendered", index) from e
            # MuPDF repairs a damaged file as best it can; a page whose content it then
            # cannot load would come out blank, which is worse than saying so.
            if doc.is_repaired and "cannot" in pymupdf.TOOLS.mupdf_warnings(reset=True):
                raise UnreadableInputError.about(
                    path, "the page is damaged (the PDF is corrupt)", index
                )
            buf = np.frombuffer(pix.samples_mv, dtype=np.uint8)
            image = buf.reshape(pix.height, pix.stride)[:, : pix.width].copy()
            yield Page(image=image, dpi=dpi, source=path, index=index)
    finally:
        doc.close()


def _scan_dpi(page: pymupdf.Page) -> float | None:
    """The resolution of the page's one scanned image, or None when the page is not a
    single image covering most of it (a born-digital page)."""
    infos = page.get_image_info()
    if len(infos) != 1:
        return None
    info = infos[0]
    shown = pymupdf.Rect(info["bbox"]) & page.rect
    page_area = abs(page.rect)
    if shown.is_empty or page_area <= 0 or abs(shown) < 0.8 * page_area:
        return None
    # Vector music drawn over an image (a paper texture) keeps the vector resolution.
    if len(page.get_drawings()) > 10:
        return None
    width, height = info.get("width", 0), info.get("height", 0)
    if width <= 0 or height <= 0:
        return None
    # Area-based, so an image placed rotated gives the same answer.
    dpi = math.sqrt(width * height / abs(pymupdf.Rect(info["bbox"]))) * 72.0
    return float(min(MAX_SCAN_DPI, max(MIN_SCAN_DPI, round(dpi))))


# --- Raster images -----------------------------------------------------------------------


def _image_pages(path: Path, pages: set[int] | None) -> Iterator[Page]:
    try:
        with warnings.catch_warnings():
            # Between the limit and twice it Pillow only warns: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageSizeError.about(path, f"the image is too large ({_too_large_text()})") from e
    except UnidentifiedImageError as e:
        size = _png_header_size(path)
        if size is not None and 0 in size:
            raise ImageSizeError.about(
                path, f"the image is empty ({size[0]}x{size[1]} pixels)"
            ) from e
        raise UnreadableInputError.about(path, "not an image or PDF file (cannot decode)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise UnreadableInputError.about(path, "the image is corrupt (cannot decode)") from e
    try:
        count = int(getattr(im, "n_frames", 1) or 1)
        selected = _selected(path, count, pages)
    except BaseException:
        im.close()
        raise
    return _read_frames(im, path, selected, count)


def _read_frames(im: Image.Image, path: Path, selected: list[int], count: int) -> Iterator[Page]:
    try:
        for index in selected:
            page = index if count > 1 else None  # messages name the page of multi-page files
            try:
                im.seek(index)
            except (EOFError, OSError, ValueError) as e:
                raise UnreadableInputError.about(path, "the page cannot be read", page) from e
            w, h = im.size
            _check_size(path, w, h, page)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    frame = ImageOps.exif_transpose(im) or im
                    image = _to_gray(frame)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise ImageSizeError.about(
                    path, f"the image is too large ({_too_large_text()})", page
                ) from e
            except (OSError, SyntaxError, ValueError) as e:
                raise UnreadableInputError.about(
                    path, "the image data is truncated or corrupt", page
                ) from e
            fix = correct_photo(image)
            yield Page(
                image=fix.image,
                dpi=_dpi(im.info),
                source=path,
                index=index,
                corrections=tuple(fix.corrections),
            )
    finally:
        im.close()


def _png_header_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG header, which Pillow will not open when one is 0."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _to_gray(im: Image.Image) -> np.ndarray:
    """Grayscale uint8, transparency composited onto white paper, deep images scaled."""
    mode = im.mode
    if mode in ("L", "1"):
        return np.array(im.convert("L"))
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        top = float(a.max()) if a.size else 0.0
        if mode != "F" and top > 255:
            a = a * (255.0 / (65535.0 if top <= 65535 else top))
        elif mode == "F" and top <= 1.0:
            a = a * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(paper, rgba).convert("L"))
    if mode not in ("RGB", "P"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return np.array(im.convert("L"))


def _dpi(info: dict) -> float:
    dpi = info.get("dpi")
    try:
        values = [float(v) for v in dpi] if isinstance(dpi, tuple | list) else [float(dpi)]
    except (TypeError, ValueError):
        return DEFAULT_DPI
    values = [v for v in values if math.isfinite(v)]
    # 1, 72 or 96 "dpi" is what programs and phones write when they do not know; 300 is the
    # better guess for sheet music, and nothing that reads a page depends on it.
    if not values or not 100 <= values[0] <= 4800:
        return DEFAULT_DPI
    return float(round(values[0], 2))


# --- Shared ------------------------------------------------------------------------------


def _check_size(path: Path, width: float, height: float, page: int | None) -> None:
    w, h = int(round(width)), int(round(height))
    if w < 1 or h < 1:
        raise ImageSizeError.about(path, f"the image is empty ({w}x{h} pixels)", page)
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageSizeError.about(
            path, f"the image is too large ({w}x{h} pixels; {_too_large_text()})", page
        )


def _too_large_text() -> str:
    return f"the limit is {MAX_PIXELS // 1_000_000} megapixels and {MAX_SIDE} pixels a side"


def _display(path: Path) -> str:
    """The path as the user gave it, on one line."""
    return str(path).replace("\n", "\\n").replace("\r", "\\r")
