"""Objectives panel: map turret labels to profiles, calibrate them, set the stand's safety.

A foreign stand ("Nikon 40X Plan Fluor ELWD") opens with profiles parsed from its labels
and pixel-size presets; here the lab manager corrects them (or adds one), calibrates, and
states the safe focus and travel limits the configuration lacks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..workers import JobWatcher
from .calibration import CalibrationResultBox, start_calibration
from .profile_editor import ProfileEditor

if TYPE_CHECKING:
    from hardware.microscope import Microscope
    from thinkscope_gui.app_model import AppModel

    from ..scope_signals import ScopeSignals


def _fmt(values: tuple[float, ...] | None) -> str:
    if values is None or not all(math.isfinite(v) for v in values):
        return ""
    return ", ".join(f"{v:g}" for v in values)


def _parse(text: str, n: int, what: str) -> tuple[float, ...] | None:
    text = text.strip()
    if not text:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(";", ",").split(","))
    except ValueError:
        raise ValueError(f"{what}: expected {n} numbers separated by commas, got {text!r}") \
            from None
    if len(vals) != n:
        raise ValueError(f"{what}: expected {n} numbers separated by commas, got {text!r}")
    return vals


class ObjectivesPanel(QWidget):
    """Profiles of the turret; saving writes the user profile file and updates the scope.

    Acts on the app model (its microscope, messages, the calibration job) and says a
    profile change through ``signals.objectiveChanged`` so the active model is re-judged."""

    def __init__(self, app: AppModel, signals: ScopeSignals,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.signals = signals
        self.scope: Microscope = app.stand
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b35c00")
        self.calibrate_now = QPushButton("Calibrate now")
        self.calibrate_now.clicked.connect(lambda: self.toggle_calibration())
        notice_row = QHBoxLayout()
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self.calibrate_now)
        self.editor = ProfileEditor()
        self.editor.set_profiles(self._shown_profiles())
        # clicked(bool) must not reach apply_and_save's `profiles` argument
        self.save_button = QPushButton("Apply && save")
        self.save_button.clicked.connect(lambda: self.apply_and_save())
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(
            lambda: self.editor.set_profiles(self._shown_profiles()))
        self.add_button = QPushButton("Add objective…")
        self.add_button.clicked.connect(lambda: self.add_objective())
        self.calib_button = QPushButton("Calibrate")
        self.calib_button.clicked.connect(lambda: self.toggle_calibration())
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.result_box = CalibrationResultBox()
        self.result_box.dismissed.connect(self._update_notice)
        row = QHBoxLayout()
        for b in (self.save_button, self.revert_button, self.add_button, self.calib_button):
            row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(notice_row)
        lay.addWidget(self.editor)
        lay.addLayout(row)
        lay.addWidget(self.result_box)
        lay.addWidget(self.status)
        lay.addWidget(self._build_stand_box())
        self._worker: JobWatcher | None = None
        self.last_result: Any = None
        #: asks the operator before oil->dry moves; tests replace it
        self.confirm = lambda text: QMessageBox.question(
            self, "Calibration", text) == QMessageBox.StandardButton.Yes
        #: asks for a new objective's turret label; tests replace it
        self.ask_label = lambda: QInputDialog.getText(
            self, "Add objective", "Turret label (e.g. \"Nikon 60X Plan Apo Oil 1.40\"):")
        self._update_notice()
        if self.notice.text():  # guide a new user here (the window's status bar)
            first = self.notice.text().splitlines()[0]
            app.show_status(f"{first} (Objectives panel)", 30000)

    # ------------------------------------------------------------------ stand settings

    def _build_stand_box(self) -> QGroupBox:
        box = QGroupBox("Stand settings (this configuration)")
        form = QFormLayout(box)
        self.safe_z_edit = QLineEdit()
        self.safe_z_edit.setPlaceholderText("Z (µm) where every objective clears the slide")
        self.xy_limits_edit = QLineEdit()
        self.xy_limits_edit.setPlaceholderText("xmin, xmax, ymin, ymax (µm)")
        self.z_limits_edit = QLineEdit()
        self.z_limits_edit.setPlaceholderText("zmin, zmax (µm)")
        form.addRow("Safe focus for objective changes", self.safe_z_edit)
        form.addRow("XY stage limits", self.xy_limits_edit)
        form.addRow("Focus limits", self.z_limits_edit)
        self.stand_save_button = QPushButton("Save stand settings")
        self.stand_save_button.clicked.connect(lambda: self.save_stand_settings())
        form.addRow(self.stand_save_button)
        self._show_stand_settings()
        return box

    def _show_stand_settings(self) -> None:
        settings = self.scope.stand_settings()
        safe = settings["safe_z"]
        self.safe_z_edit.setText("" if safe is None else f"{safe:g}")
        self.xy_limits_edit.setText(_fmt(settings["stage_limits"]))
        self.z_limits_edit.setText(_fmt(settings["z_limits"]))

    def save_stand_settings(self) -> bool:
        """Store safe focus and limits for this configuration and apply them now."""
        from hardware.stage_settings import save_stage_settings

        try:
            xy = _parse(self.xy_limits_edit.text(), 4, "XY stage limits")
            zl = _parse(self.z_limits_edit.text(), 2, "Focus limits")
            sz = _parse(self.safe_z_edit.text(), 1, "Safe focus")
            values: dict[str, Any] = {"stage_limits": xy, "z_limits": zl,
                                      "safe_z": sz[0] if sz else None}
            values = {k: v for k, v in values.items() if v is not None}
            self.scope.set_stand_settings(**values)
            path = save_stage_settings(self.scope.source, **values)
        except Exception as exc:  # noqa: BLE001 - bad input is reported, nothing saved
            self.app.report("Stand settings", str(exc))
            return False
        self.status.setText(f"stand settings saved to {path}")
        self._update_notice()
        return True

    # ------------------------------------------------------------------ profiles

    def _shown_profiles(self) -> dict[str, Any]:
        """This stand's turret (in turret order), then objectives the lab added; the
        simulator's shipped defaults are left out on stands whose turret lacks them."""
        from hardware.profiles import shipped_profile_labels

        profiles = self.scope.profiles
        turret = [lb for lb in self.scope.objectives() if lb in profiles]
        shipped = shipped_profile_labels()
        extra = [lb for lb in profiles if lb not in turret and lb not in shipped]
        return {lb: profiles[lb] for lb in turret + extra}

    def _update_notice(self) -> None:
        from thinkscope_gui.pairs.calibration import uncalibrated

        lines = []
        if hasattr(self.scope, "limits_warning") and (w := self.scope.limits_warning()):
            lines.append(w)
        try:
            self.scope.safe_z()
        except Exception as exc:  # noqa: BLE001 - SafetyError: say how to fix it
            lines.append(str(exc))
        todo = uncalibrated(self.scope.profiles, self.scope.objectives())
        if todo and self._worker_idle():
            lines.append(f"Objectives not calibrated: {', '.join(todo)}. Calibrate now?")
        self.calibrate_now.setVisible(bool(todo) and self._worker_idle())
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(bool(lines))

    def _worker_idle(self) -> bool:
        return getattr(self, "_worker", None) is None

    def add_objective(self, label: str | None = None) -> bool:
        """Add a row for a new objective, with values parsed from its label (then edit)."""
        from hardware.profiles import profile_from_label

        if label is None:
            text, ok = self.ask_label()
            if not ok or not text.strip():
                return False
            label = text.strip()
        try:
            current = self.editor.profiles()
        except Exception as exc:  # noqa: BLE001
            self.app.report("Objective profiles", str(exc))
            return False
        if label in current:
            self.app.report("Add objective", f"{label!r} already has a profile")
            return False
        current[label] = profile_from_label(label)
        self.editor.set_profiles(current)
        self.status.setText(f"added {label}: check its values, then Apply & save")
        return True

    def apply_and_save(self, profiles: dict[str, Any] | None = None) -> bool:
        """Apply edited (or given) profiles to the microscope and save the user file."""
        from hardware.profiles import save_user_profiles, user_profile_labels

        try:
            new = profiles if profiles is not None else self.editor.profiles()
            self.scope.set_profiles(new)
            known = self.scope.profiles  # keep the lab's entries this stand does not show
            kept = {lb: known[lb] for lb in user_profile_labels() if lb in known}
            path = save_user_profiles({**kept, **new})
        except Exception as exc:  # noqa: BLE001
            self.app.report("Objective profiles", str(exc))
            return False
        self.editor.set_profiles(self._shown_profiles())
        self.status.setText(f"saved to {path}")
        self._update_notice()
        self.app.catalogue_changed()  # retired/replaced objectives: stale models
        self.signals.objectiveChanged.emit(self.scope.objective())
        return True

    # ------------------------------------------------------------------ calibration

    def toggle_calibration(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status.setText("cancelling…")
            return
        oil = any(p.immersion == "oil" for p in self.scope.profiles.values() if not p.retired)
        if oil and not self.confirm("Calibration visits the oil objective and comes back to "
                                    "dry objectives. Is the slide ready for that?"):
            return

        def finish(text: str) -> None:  # the runner restores live view, not this panel
            self._worker = None
            self.calib_button.setText("Calibrate")
            self.status.setText(text)
            self._update_notice()

        def done(result: Any) -> None:
            self.last_result = result
            saved = self.apply_and_save(result.profiles)
            finish("calibration saved" if saved else "calibration measured but NOT saved")
            self.result_box.show_result("Calibration measured:\n" + result.summary())

        def failed(msg: str) -> None:
            finish("calibration failed")
            self.app.report("Calibration failed", msg)

        self._worker = start_calibration(self, self.scope, start_job=self.app.try_start_job,
                                         on_done=done, on_failed=failed,
                                         on_progress=self.status.setText,
                                         on_cancelled=lambda: finish("calibration cancelled"))
        if self._worker is None:  # the stand is busy (reported)
            return
        self.calib_button.setText("Stop calibration")
        self.result_box.hide()
        self._update_notice()

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(10000)
