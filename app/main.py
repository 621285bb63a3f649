"""`deepmusic-ocr-studio [FILE]`: start the correction studio, optionally opening a PDF, an
image or a project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deepmusic-ocr-studio",
        description="Correct sheet music read by DeepMusic-OCR: the scan beside its engraving.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="a PDF, an image or a .dmocr project")
    parser.add_argument(
        "--settings", type=Path, help="read and write preferences in this INI file instead"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from .main_window import APP_NAME, MainWindow
    from .settings import APPLICATION, ORGANIZATION, Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_NAME)
    window = MainWindow(Settings(args.settings))
    window.show()
    recovered = window.recover_autosaves()
    if args.file is not None and not recovered:
        window.open_path(args.file)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
