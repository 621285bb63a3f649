"""DeepMusic-OCR Studio: the PySide6 correction studio (scan beside engraving, issues,
keyboard editing, projects). The engine it drives lives in `omr_engine`, reached only
through `app.engine.Engine`."""

from . import qt_compat  # noqa: F401  (first: guards against a PySide6 refcount bug)
