"""A pure editor widget for pydantic models (plans, training configs, profiles).

It builds one input per field from the field's type and docstring, so new fields in the
engines appear in the GUI without UI changes. No microscope access here.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

#: per-field display hints: labels (one per tuple item), suffix, decimals, minimum, maximum
Hints = dict[str, dict[str, Any]]


class TupleEditor(QWidget):
    """A fixed-length tuple of numbers as spin boxes side by side (e.g. X and Y in µm)."""

    changed = Signal()

    def __init__(self, values: tuple[Any, ...], item_type: type, hint: dict[str, Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        labels = hint.get("labels", ("",) * len(values))
        self.spins: list[QSpinBox | QDoubleSpinBox] = []
        for label, v in zip(labels, values, strict=True):
            if item_type is int:
                w: QSpinBox | QDoubleSpinBox = QSpinBox()
                w.setRange(int(hint.get("minimum", -10**9)), int(hint.get("maximum", 10**9)))
                w.setValue(int(v))
            else:
                w = QDoubleSpinBox()
                w.setDecimals(int(hint.get("decimals", 3)))
                w.setRange(float(hint.get("minimum", -1e9)), float(hint.get("maximum", 1e9)))
                w.setValue(float(v))
            w.setPrefix(f"{label} " if label else "")
            w.setSuffix(hint.get("suffix", ""))
            w.setKeyboardTracking(False)
            _narrow(w)
            w.valueChanged.connect(self.changed)
            lay.addWidget(w)
            self.spins.append(w)

    def values(self) -> list[Any]:
        return [w.value() for w in self.spins]


def _narrow(w: QWidget, minimum: int = 70) -> None:
    """Let an editor shrink to the dock's width (a spin box's hint counts its whole range)."""
    w.setMinimumWidth(minimum)
    w.setSizePolicy(QSizePolicy.Policy.Ignored, w.sizePolicy().verticalPolicy())


def _number_tuple(tp: Any) -> type | None:
    """int or float if ``tp`` is a fixed tuple of that number type, else None."""
    if typing.get_origin(tp) is not tuple:
        return None
    args = typing.get_args(tp)
    if not args or Ellipsis in args or len(set(args)) != 1 or args[0] not in (int, float):
        return None
    return args[0]


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


class ModelForm(QWidget):
    """Edit a pydantic model instance; ``value()`` validates and returns a new instance."""

    changed = Signal()

    def __init__(self, model: BaseModel, parent: QWidget | None = None,
                 exclude: tuple[str, ...] = (), first: tuple[str, ...] = (),
                 hints: Hints | None = None) -> None:
        super().__init__(parent)
        self._hints = hints or {}
        self._cls = type(model)
        self._exclude = exclude
        self._first = first
        self._editors: dict[str, tuple[QWidget, Any, bool]] = {}
        self._subforms: dict[str, ModelForm] = {}
        self._layout = QFormLayout(self)
        self._build(model)

    def _build(self, model: BaseModel) -> None:
        fields = self._cls.model_fields
        # the fields an operator changes most come first; the rest keep declaration order
        order = [n for n in self._first if n in fields] + [
            n for n in fields if n not in self._first]
        for name in order:
            info = fields[name]
            if name in self._exclude:
                continue
            tp, optional = _unwrap_optional(info.annotation)
            value = getattr(model, name)
            tip = info.description or ""
            if isinstance(tp, type) and issubclass(tp, BaseModel) and value is not None:
                box = QGroupBox(name)
                prefix = f"{name}."
                sub = ModelForm(value, box, hints={k[len(prefix):]: v for k, v in
                                                   self._hints.items() if k.startswith(prefix)})
                sub.changed.connect(self.changed)
                lay = QFormLayout(box)
                lay.addRow(sub)
                self._subforms[name] = sub
                self._layout.addRow(box)
                continue
            hint = self._hints.get(name, {})
            editor = self._make_editor(tp, value, optional, hint)
            if not isinstance(editor, (QCheckBox, TupleEditor)):
                _narrow(editor, 90)
            editor.setToolTip(tip)
            self._editors[name] = (editor, tp, optional)
            self._layout.addRow(hint.get("title", name.replace("_", " ")), editor)

    def _make_editor(self, tp: Any, value: Any, optional: bool,
                     hint: dict[str, Any]) -> QWidget:
        item = _number_tuple(tp)
        if item is not None and not optional:
            t = TupleEditor(tuple(value), item, hint)
            t.changed.connect(self.changed)
            return t
        if tp is bool:
            w = QCheckBox()
            w.setChecked(bool(value))
            w.toggled.connect(self.changed)
            return w
        if typing.get_origin(tp) is Literal:
            w = QComboBox()
            w.addItems([str(a) for a in typing.get_args(tp)])
            w.setCurrentText(str(value))
            w.currentTextChanged.connect(self.changed)
            return w
        if tp is int and not optional:
            w = QSpinBox()
            w.setRange(int(hint.get("minimum", -10**9)), int(hint.get("maximum", 10**9)))
            w.setSuffix(hint.get("suffix", ""))
            w.setValue(int(value))
            w.valueChanged.connect(self.changed)
            return w
        if tp is float and not optional:
            w = QDoubleSpinBox()
            w.setDecimals(int(hint.get("decimals", 6)))
            w.setRange(float(hint.get("minimum", -1e9)), float(hint.get("maximum", 1e9)))
            w.setSuffix(hint.get("suffix", ""))
            w.setValue(float(value))
            w.valueChanged.connect(self.changed)
            return w
        w = QLineEdit(self._to_text(value))
        w.textChanged.connect(self.changed)
        return w

    @staticmethod
    def _to_text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value)

    def raw(self) -> dict[str, Any]:
        """The edited values as a plain dict (not validated)."""
        data: dict[str, Any] = {}
        for name, (w, tp, optional) in self._editors.items():
            if isinstance(w, TupleEditor):
                data[name] = w.values()
            elif isinstance(w, QCheckBox):
                data[name] = w.isChecked()
            elif isinstance(w, QComboBox):
                data[name] = w.currentText()
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                data[name] = w.value()
            else:
                text = w.text().strip()
                if text == "" and optional:
                    data[name] = None
                elif tp is str:
                    data[name] = text
                else:
                    try:
                        data[name] = json.loads(text)
                    except json.JSONDecodeError:
                        data[name] = text
        for name, sub in self._subforms.items():
            data[name] = sub.raw()
        return data

    def value(self) -> BaseModel:
        """Validated model; raises ValueError with pydantic's explanation on bad input."""
        try:
            return self._cls.model_validate(self.raw())
        except ValidationError as exc:
            raise ValueError(str(exc)) from exc

    def set_value(self, model: BaseModel) -> None:
        """Show the values of ``model``: in the editors there are when it has the same
        fields (building them again took ~40 ms of the GUI thread at each Start, which
        writes the unique output name back), else in new editors. Emits no ``changed``."""
        if type(model) is self._cls and self._fits(model):
            self._fill(model)
            return
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self._editors.clear()
        self._subforms.clear()
        self._cls = type(model)
        self._build(model)

    def _fits(self, model: BaseModel) -> bool:
        """True when ``model`` needs exactly the editors and sub-forms this form has."""
        for name in self._cls.model_fields:
            if name in self._exclude:
                continue
            value = getattr(model, name)
            sub = self._subforms.get(name)
            if sub is not None:
                ok = type(value) is sub._cls and sub._fits(value)
            else:
                w = self._editors[name][0] if name in self._editors else None
                ok = w is not None and not isinstance(value, BaseModel) and (
                    not isinstance(w, TupleEditor) or len(w.spins) == len(value))
            if not ok:
                return False
        return True

    def _fill(self, model: BaseModel) -> None:
        """Put ``model``'s values into the existing editors, signals blocked."""
        for name, (w, _tp, _optional) in self._editors.items():
            value = getattr(model, name)
            editors = w.spins if isinstance(w, TupleEditor) else [w]
            for e in editors:
                e.blockSignals(True)
            try:
                if isinstance(w, TupleEditor):
                    for spin, v in zip(w.spins, value, strict=True):
                        spin.setValue(v)
                elif isinstance(w, QCheckBox):
                    w.setChecked(bool(value))
                elif isinstance(w, QComboBox):
                    w.setCurrentText(str(value))
                elif isinstance(w, QSpinBox):
                    w.setValue(int(value))
                elif isinstance(w, QDoubleSpinBox):
                    w.setValue(float(value))
                else:
                    w.setText(self._to_text(value))
            finally:
                for e in editors:
                    e.blockSignals(False)
        for name, sub in self._subforms.items():
            sub._fill(getattr(model, name))
