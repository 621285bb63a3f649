"""A contact sheet of random examples with their tokens printed under each image, for
looking at what a dataset build would make (`deepmusic-ocr synth --preview`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .build import BuildConfig, shard_examples
from .examples import Example
from .sources import PieceStore

__all__ = ["contact_sheet", "preview_examples"]


def preview_examples(
    count: int, config: BuildConfig, cache_dir: Path | None = None
) -> list[Example]:
    """The first `count` examples of shard 0 of `config` with one crop per engraving, so
    that every example comes from another piece and style."""
    fields = {k: v for k, v in config.to_json().items() if k != "format"}
    one_each = BuildConfig(**{**fields, "max_per_job": 1})
    stream = shard_examples(one_each, 0, PieceStore(cache_dir), Counter())
    return [next(stream) for _ in range(count)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in ("DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def contact_sheet(
    examples: Sequence[Example], width: int = 1500, max_image_height: int = 320
) -> Image.Image:
    """Each example's image (scaled to fit) over a caption and its tokens."""
    font = _font(13)
    bold = _font(14)
    line_h = 17
    cells = []
    for ex in examples:
        image = Image.fromarray(ex.image)
        scale = min(1.0, (width - 16) / image.width, max_image_height / image.height)
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        d = ex.degradation
        caption = (
            f"{ex.unit} | {ex.piece} | measures {ex.measures[0]}-{ex.measures[1] - 1}"
            f" | {ex.style.font} | from {ex.engraved_from} | strength {ex.strength:.2f}"
            f" | binarize {d.binarize}, jpeg {d.jpeg_quality or '-'}, rot {d.rotation_deg:+.1f}"
        )
        lines = _wrap(ex.tokens, font, width - 16)
        cells.append((image, caption, lines))
    height = sum(8 + im.height + 6 + line_h * (1 + len(ls)) + 10 for im, _, ls in cells)
    sheet = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(sheet)
    y = 0
    for image, caption, lines in cells:
        draw.rectangle([0, y, width, y + 3], fill=90)
        y += 8
        sheet.paste(image, (8, y))
        draw.rectangle([7, y - 1, 8 + image.width, y + image.height], outline=160)
        y += image.height + 6
        draw.text((8, y), caption, fill=0, font=bold)
        y += line_h
        for line in lines:
            draw.text((8, y), line, fill=60, font=font)
            y += line_h
        y += 10
    return sheet


def _wrap(tokens: Sequence[str], font, width: float) -> list[str]:
    """Tokens in lines no wider than `width` pixels."""
    lines: list[str] = []
    line = ""
    for token in tokens:
        candidate = f"{line} {token}" if line else token
        if line and font.getlength(candidate) > width:
            lines.append(line)
            candidate = token
        line = candidate
    return [*lines, line] if line else lines


def write_preview(path: Path, examples: Sequence[Example]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(examples).save(path)
