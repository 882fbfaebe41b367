"""Objectives panel: edit profiles, run the registration-based calibration, save them."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget

from ..workers import Cancelled, FunctionWorker, start_worker
from .profile_editor import ProfileEditor


class ObjectivesPanel(QWidget):
    """Profiles of the turret; saving writes the user profile file and updates the scope."""

    def __init__(self, scope: Any, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scope = scope
        self.window_ = window
        self.editor = ProfileEditor()
        self.editor.set_profiles(dict(scope.profiles))
        self.save_button = QPushButton("Apply && save")
        self.save_button.clicked.connect(self.apply_and_save)
        revert = QPushButton("Revert")
        revert.clicked.connect(lambda: self.editor.set_profiles(dict(self.scope.profiles)))
        self.calib_button = QPushButton("Calibrate")
        self.calib_button.clicked.connect(self.toggle_calibration)
        self.status = QLabel()
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        for b in (self.save_button, revert, self.calib_button):
            row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(self.editor)
        lay.addLayout(row)
        lay.addWidget(self.status)
        self._worker: FunctionWorker | None = None
        self.last_result: Any = None
        #: asks the operator before oil->dry moves; tests replace it
        self.confirm = lambda text: QMessageBox.question(
            self, "Calibration", text) == QMessageBox.StandardButton.Yes

    def apply_and_save(self, profiles: dict[str, Any] | None = None) -> bool:
        """Apply edited (or given) profiles to the microscope and save the user file."""
        from hardware.profiles import save_user_profiles

        try:
            new = profiles if profiles is not None else self.editor.profiles()
            self.scope.set_profiles(new)
            path = save_user_profiles(new)
        except Exception as exc:  # noqa: BLE001
            self.window_.report("Objective profiles", str(exc))
            return False
        self.editor.set_profiles(dict(self.scope.profiles))
        self.status.setText(f"saved to {path}")
        models = self.window_.panels.get("Models")
        if models is not None and hasattr(models, "refresh"):
            models.refresh()  # retired/replaced objectives make their models stale
        self.window_.signals.objectiveChanged.emit(self.scope.objective())
        return True

    def toggle_calibration(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status.setText("cancelling…")
            return
        oil = any(p.immersion == "oil" for p in self.scope.profiles.values())
        if oil and not self.confirm("Calibration visits the oil objective and comes back to "
                                    "dry objectives. Is the slide ready for that?"):
            return
        from .calibration import CalibrationCancelled, calibrate

        scope = self.scope
        was_live = scope.is_live()
        if was_live:
            self.window_.set_live(False)

        def job(token: Any, progress: Any) -> Any:
            try:
                return calibrate(scope, confirm_oil_to_dry=True,
                                 cancelled=lambda: token.cancelled, progress=progress)
            except CalibrationCancelled as exc:
                raise Cancelled() from exc

        def finish(text: str) -> None:
            self._worker = None
            self.calib_button.setText("Calibrate")
            self.status.setText(text)
            if was_live:
                self.window_.set_live(True)

        def done(result: Any) -> None:
            self.last_result = result
            finish("calibrated: " + ", ".join(
                f"{k} {v:.4g} µm/px" for k, v in result.pixel_size_um.items()))
            self.apply_and_save(result.profiles)

        def failed(msg: str) -> None:
            finish("calibration failed")
            self.window_.report("Calibration failed", msg)

        self.calib_button.setText("Stop calibration")
        self._worker = start_worker(self, job, done, failed, self.status.setText,
                                    lambda: finish("calibration cancelled"))

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(10000)
