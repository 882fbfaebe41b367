"""GUI entry point: ``run_gui(source, screenshot=None)`` (called by main.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor, QFont, QPainter, QPixmap
from qtpy.QtWidgets import QApplication, QLabel, QMessageBox

from .settings import APP_NAME, ORG_NAME

log = logging.getLogger(__name__)

SCREENSHOT_SENSOR = (1024, 1024)
#: --screenshot: seconds to let fps settle after the first enhanced frame, then to measure
#: (THINKSCOPE_SCREENSHOT_SECONDS="SETTLE,MEASURE" shortens them where only the run matters:
#: the test suite)
SETTLE_S, MEASURE_S = 3.0, 4.0
with contextlib.suppress(ValueError):
    SETTLE_S, MEASURE_S = (float(v) for v in
                           os.environ.get("THINKSCOPE_SCREENSHOT_SECONDS", "3,4").split(","))
TIMEOUT_S = 120.0


def _app() -> QApplication:
    os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG_NAME)
    app.setApplicationName(APP_NAME)
    return app  # type: ignore[return-value]


def process_age_s() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere since import)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


class Splash(QLabel):
    """A drawn splash (no image file), shown until the first live frame.

    A frameless label rather than QSplashScreen: QSplashScreen.show() waits up to 1 s for
    the window manager to expose it (the whole second on a display that never does, such
    as offscreen), and that second is spent before the microscope even starts opening.
    """

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint
                         | Qt.WindowType.WindowStaysOnTopHint)
        self._pix = QPixmap(460, 150)
        self.message = ""
        self.show_message("opening the microscope…")

    def show_message(self, text: str) -> None:
        """Redraw with ``text`` at the bottom and paint it now (the event loop is not
        running yet during start-up)."""
        self.message = text
        pix = self._pix
        pix.fill(QColor(24, 28, 36))
        p = QPainter(pix)
        p.setPen(QColor(235, 235, 235))
        font = QFont()
        font.setPointSize(20)
        font.setBold(True)
        p.setFont(font)
        p.drawText(24, 56, "ThinkScope")
        font.setPointSize(10)
        font.setBold(False)
        p.setFont(font)
        p.drawText(24, 84, "a learning bright-field microscope")
        p.setPen(QColor(200, 200, 200))
        p.drawText(24, 136, text)
        p.end()
        self.setPixmap(pix)
        if self.isVisible():
            self.repaint()

    def show_centered(self) -> None:
        screen = QApplication.primaryScreen()
        if screen is not None:
            geo = screen.availableGeometry()
            self.move(geo.center() - self.rect().center())
        self.show()
        self.repaint()

    def finish(self, window: Any) -> None:
        """Close once ``window`` is up (as QSplashScreen.finish)."""
        self.close()
        self.deleteLater()


def splash_screen() -> Splash:
    """The start-up splash (see :class:`Splash`)."""
    splash = Splash()
    splash.adjustSize()
    return splash


def open_scope(source: str, sensor: tuple[int, int] | None = None) -> Any:
    """Open the microscope facade; errors propagate with the backend's message."""
    from hardware import open_microscope

    scope = open_microscope(source, sensor=sensor, mechanical_delays=False)
    world = getattr(getattr(scope, "core", None), "sim_world", None)
    if world is not None:  # the simulator: its first image from previews, at once
        world.quick_first_frame = True
    return scope


class StartupMarks:
    """Seconds after process start at which each start-up step ended (logged at INFO):
    where the time to the first frame goes."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = [("python + imports", process_age_s())]

    def mark(self, what: str) -> None:
        self.marks.append((what, process_age_s()))
        log.info("start-up: %s at %.2f s", what, self.marks[-1][1])
        if os.environ.get("THINKSCOPE_STARTUP_TRACE"):
            print(f"start-up: {what} at {self.marks[-1][1]:.2f} s", file=sys.stderr)


class ScreenshotRun:
    """Drives --screenshot: live + lens enhancement, wait for steady fps, grab, report."""

    def __init__(self, window: Any, path: str) -> None:
        self.window = window
        self.path = Path(path)
        self.rc = 1
        self.result: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._t_first: float | None = None
        self._measure_from: float | None = None
        self._counts = (0, 0)
        self._enabled = False
        self._focused = False
        self._af_started = False
        self._timer = QTimer(window)
        self._timer.timeout.connect(self._tick)
        self._timer.start(100)

    def _tick(self) -> None:
        w = self.window
        now = time.perf_counter()
        if now - self._t0 > TIMEOUT_S:
            self._finish("timed out waiting for enhanced frames")
            return
        if getattr(w, "first_frame_s", None) is None:
            return  # the start-up is measured as a user sees it: nothing runs before it
        if not self._focused:
            # focus first so the screenshot shows a sharp specimen (cancellable worker)
            if not self._af_started:
                self._af_started = True
                w.focus_widget.toggle_autofocus()
            self._focused = not w.focus_widget.is_running()
            return
        if not self._enabled:
            if w.models.enhancer is None:
                if w.ready and not w.models.loading():
                    self._finish("no model could be loaded")
                return
            w.set_overlay_mode("enhancement lens")
            if w.view.frame is not None:
                h, wd = w.view.frame.shape[:2]
                w.view.set_lens_center(wd / 2, h / 2)
            w.set_enhancing(True)
            self._enabled = w.live.enhancing
            if not self._enabled:
                self._finish("enhancement could not be enabled")
            return
        if self._t_first is None:
            if w.live.frames_enhanced > 0:
                self._t_first = now
            return
        if self._measure_from is None and now - self._t_first >= SETTLE_S:
            self._measure_from = now
            self._counts = (w.live.frames_shown, w.live.frames_enhanced)
            w.live.latency.reset()
            return
        if self._measure_from is not None and now - self._measure_from >= MEASURE_S:
            dt = now - self._measure_from
            self.result = {
                "camera_fps": (w.live.frames_shown - self._counts[0]) / dt,
                "enhanced_fps": (w.live.frames_enhanced - self._counts[1]) / dt,
                "latency_ms": w.live.latency.mean,
            }
            self._finish(None)

    def _finish(self, error: str | None) -> None:
        self._timer.stop()
        w = self.window
        w._update_hud()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ok = w.grab().save(str(self.path))
        if error:
            print(f"screenshot: {error}", file=sys.stderr)
            self.rc = 1 if not ok else 2
        else:
            r = self.result
            first = getattr(w, "first_frame_s", None)
            if first is not None:
                print(f"first frame: {first:.2f} s after start")
            print(f"camera fps: {r['camera_fps']:.1f}")
            print(f"enhanced fps (lens): {r['enhanced_fps']:.1f}")
            print(f"latency ms: {r['latency_ms']:.1f}")
            print(f"screenshot: {self.path}" + ("" if ok else " (save FAILED)"))
            self.rc = 0 if ok else 1
        w.close()
        QApplication.instance().quit()


def run_gui(source: str = "sim", screenshot: str | None = None,
            size: tuple[int, int] | None = None) -> int:
    """Open the main window on ``source``; with ``screenshot`` run the timed demo and exit.

    ``size`` (width, height) sizes the window; with a screenshot every dock is shown.
    """
    from .errors import install_excepthook
    from .workers import finish_workers

    marks = StartupMarks()
    app = _app()
    marks.mark("QApplication")
    splash = splash_screen()
    splash.show_centered()
    app.processEvents()
    marks.mark("splash shown")
    try:
        sim = source.startswith("sim")
        scope = open_scope(source, SCREENSHOT_SENSOR if screenshot and sim else None)
        marks.mark("microscope open")
    except Exception as exc:  # noqa: BLE001 - a clear message, not a traceback
        splash.close()
        # stderr and the log file too (main.py sets both up; without handlers logging's
        # last resort still prints it): the dialog alone leaves nothing to diagnose later
        logging.getLogger(__name__).error("cannot open microscope '%s': %s", source, exc)
        if not screenshot:
            QMessageBox.critical(None, "ThinkScope", f"Cannot open microscope '{source}':\n{exc}")
        return 1
    try:
        # the camera starts now: its first frame (the simulator renders the slide on its
        # first frame) is made while the window is being built
        with contextlib.suppress(Exception):
            scope.start_live()
        marks.mark("camera started")
        splash.show_message("building the window…")
        app.processEvents()
        from .main_window import MainWindow  # pyqtgraph: imported while the camera starts

        marks.mark("window imported")

        try:
            window = MainWindow(scope, modal_errors=screenshot is None, defer_heavy=True)
        except Exception as exc:  # noqa: BLE001 - say why instead of a bare traceback
            splash.close()
            print(f"cannot build the main window: {type(exc).__name__}: {exc}", file=sys.stderr)
            if not screenshot:
                QMessageBox.critical(None, "ThinkScope", f"Cannot start the GUI:\n{exc}")
            return 1
        marks.mark("window built")
        window.freeze_heap = True   # gc.freeze() once start-up is over (MainWindow)
        install_excepthook(window.reporter)
        if size is not None:
            window.fit_to(*size, show_all_docks=screenshot is not None)
        window.show()
        marks.mark("window shown")

        def first_frame(_number: int) -> None:
            window.live.frameShown.disconnect(first_frame)
            window.first_frame_s = process_age_s()
            marks.mark("first frame")
            window.startup_marks = marks.marks
            #: what the start-up had to import (tests check no heavy engine is among them)
            window.modules_at_first_frame = frozenset(sys.modules)
            log.info("first live frame %.2f s after start", window.first_frame_s)
            splash.finish(window)
            window.start_background()  # heavy imports now, while live runs

        window.live.frameShown.connect(first_frame)
        window.set_live(True)
        if screenshot:
            run = ScreenshotRun(window, screenshot)
            app.exec()
            return run.rc
        return int(app.exec())
    finally:
        sys.excepthook = sys.__excepthook__
        finish_workers()
        with contextlib.suppress(Exception):
            scope.close()
