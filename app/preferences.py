"""The preferences dialog, built from the options declared in `app.settings`."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from .settings import MODEL_DIR, OPTIONS, Option, Settings


class PreferencesDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.settings = settings
        self.editors: dict[str, tuple[Option, Any]] = {}
        form = QFormLayout(self)
        for option in OPTIONS:
            if option.user_visible:
                form.addRow(option.label, self._editor(option))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _editor(self, option: Option) -> QWidget:
        value = self.settings.get(option)
        widget: Any
        if option.choices:
            widget = QComboBox()
            widget.addItems(list(option.choices))
            widget.setCurrentText(value)
        elif option.type is bool:
            widget = QCheckBox()
            widget.setChecked(value)
        elif option.type is int:
            widget = QSpinBox()
            widget.setRange(int(option.minimum or 0), int(option.maximum or 10**6))
            widget.setValue(value)
        elif option.type is float:
            widget = QDoubleSpinBox()
            widget.setRange(option.minimum or 0.0, option.maximum or 1e6)
            widget.setSingleStep(0.05)
            widget.setValue(value)
        else:
            widget = QLineEdit(value)
        self.editors[option.key] = (option, widget)
        if option is MODEL_DIR:
            row = QWidget()
            layout = QHBoxLayout(row)
            layout.setContentsMargins(0, 0, 0, 0)
            browse = QPushButton("Browse…")
            browse.clicked.connect(lambda: self._browse(widget))
            layout.addWidget(widget, 1)
            layout.addWidget(browse)
            return row
        return widget

    def _browse(self, line: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", line.text())
        if folder:
            line.setText(folder)

    def accept(self) -> None:
        for option, widget in self.editors.values():
            if isinstance(widget, QComboBox):
                value: Any = widget.currentText()
            elif isinstance(widget, QCheckBox):
                value = widget.isChecked()
            elif isinstance(widget, QSpinBox | QDoubleSpinBox):
                value = widget.value()
            else:
                value = widget.text()
            self.settings.set(option, value)
        super().accept()
