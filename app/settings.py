"""Every studio preference, declared once with its type and default, read and written here only.

Other modules never touch QSettings: they ask `Settings.get(OPTION)` and listen to
`Settings.changed`. The preferences dialog is built from `OPTIONS`, so a new option needs
one line here and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QSettings, Signal

T = TypeVar("T")

ORGANIZATION = "DeepMusic-OCR"
APPLICATION = "studio"
MAX_RECENT_FILES = 10


@dataclass(frozen=True)
class Option(Generic[T]):
    """One preference: where it is stored, its type, its default, and how a person sees it."""

    key: str
    type: type
    default: T
    label: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    user_visible: bool = True  # shown in the preferences dialog


DEVICE = Option(
    "recognition/device", str, "auto", "Run the model on", choices=("auto", "cpu", "cuda")
)
MODEL_DIR = Option("recognition/model_dir", str, "", "Model folder (empty: the bundled model)")
CONFIDENCE_THRESHOLD = Option(
    "review/confidence_threshold",
    float,
    0.6,
    "Flag measures read with confidence below",
    minimum=0.0,
    maximum=1.0,
)
SHOW_LOW_CONFIDENCE = Option(  # on: a measure the grammar accepts may still be misread
    "review/show_low_confidence", bool, True, "Highlight low-confidence measures"
)
AUTOSAVE_SECONDS = Option(
    "files/autosave_seconds",
    int,
    60,
    "Autosave every (seconds, 0 = never)",
    minimum=0,
    maximum=3600,
)
RECENT_FILES = Option("files/recent", list, [], user_visible=False)
LAST_DIRECTORY = Option("files/last_directory", str, "", user_visible=False)
WINDOW_GEOMETRY = Option("window/geometry", bytes, b"", user_visible=False)
WINDOW_STATE = Option("window/state", bytes, b"", user_visible=False)

OPTIONS: tuple[Option, ...] = (
    DEVICE,
    MODEL_DIR,
    CONFIDENCE_THRESHOLD,
    SHOW_LOW_CONFIDENCE,
    AUTOSAVE_SECONDS,
    RECENT_FILES,
    LAST_DIRECTORY,
    WINDOW_GEOMETRY,
    WINDOW_STATE,
)


def _coerce(option: Option[T], value: Any) -> T:
    """QSettings hands back strings (INI files) or native values (registry, plist)."""
    if value is None:
        return option.default
    try:
        if option.type is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")  # type: ignore[return-value]
            return bool(value)  # type: ignore[return-value]
        if option.type is list:
            if isinstance(value, str):
                return [value] if value else []  # type: ignore[return-value]
            return [str(v) for v in value]  # type: ignore[return-value]
        if option.type is bytes:
            return bytes(value)  # type: ignore[return-value]
        result = option.type(value)
    except (TypeError, ValueError):
        return option.default
    if option.choices and result not in option.choices:
        return option.default
    if option.minimum is not None and result < option.minimum:
        return option.default
    if option.maximum is not None and result > option.maximum:
        return option.default
    return result


class Settings(QObject):
    """Typed access to the declared options; `path` gives an INI file (tests, portable use)."""

    changed = Signal(str)  # option key

    def __init__(self, path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if path is None:
            self._store = QSettings(ORGANIZATION, APPLICATION)
        else:
            self._store = QSettings(str(path), QSettings.Format.IniFormat)

    def get(self, option: Option[T]) -> T:
        return _coerce(option, self._store.value(option.key, option.default))

    def set(self, option: Option[T], value: T) -> None:
        value = _coerce(option, value)
        if value == self.get(option):
            return
        self._store.setValue(option.key, value)
        self.changed.emit(option.key)

    def reset(self, option: Option) -> None:
        self._store.remove(option.key)
        self.changed.emit(option.key)

    def sync(self) -> None:
        self._store.sync()

    # --------------------------------------------------------- recent files

    def add_recent_file(self, path: Path | str) -> None:
        text = str(Path(path).resolve())
        recent = [p for p in self.get(RECENT_FILES) if p != text]
        self.set(RECENT_FILES, [text, *recent][:MAX_RECENT_FILES])

    def recent_files(self) -> list[Path]:
        return [Path(p) for p in self.get(RECENT_FILES)]
