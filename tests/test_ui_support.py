"""Shared fixtures for the GUI tests: a small simulated microscope and the real window."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")

SENSOR = (256, 256)


def make_model(path: Path, scope: Any, lr: str = "40x", hr: str = "100x") -> Path:
    """A small untrained fast model file for the lr->hr pair (real file, real loader)."""
    from thinkscope_gui.learn.meta import ModelMeta
    from thinkscope_gui.learn.modelfile import save_model
    from thinkscope_gui.learn.models import build_model

    lp, hp = scope.profile(lr), scope.profile(hr)
    scale = lp.pixel_size_um / hp.pixel_size_um
    model = build_model("fast", 3, scale, {})
    meta = ModelMeta(arch="fast", arch_params=dict(getattr(model, "arch_params", {})),
                     scale=scale, channels=3, lr_profile=lp, hr_profile=hp,
                     lr_pixel_size_um=lp.pixel_size_um, hr_pixel_size_um=hp.pixel_size_um,
                     command="tests/test_ui_support.make_model")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, meta, path)
    return path


def worker_result(qtbot: Any, enhancer: Any, job: Any) -> Any:
    """The result of one job on a real live-enhancement worker thread."""
    from thinkscope_gui.ui.enhance_worker import LiveEnhanceWorker

    worker = LiveEnhanceWorker()
    results: list[Any] = []
    worker.result.connect(results.append)
    worker.set_enhancer(enhancer)
    worker.start()
    try:
        worker.submit(job)
        qtbot.waitUntil(lambda: bool(results), timeout=20000)
    finally:
        worker.stop()
    return results[0]


@pytest.fixture
def ui_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, profiles and models in a temp dir so tests never touch the user's."""
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("THINKSCOPE_SETTINGS_DIR", str(tmp_path / "settings"))
    return tmp_path


@pytest.fixture
def scope(ui_env: Path) -> Iterator[Any]:
    from hardware import open_microscope

    s = open_microscope("sim", sensor=SENSOR, mechanical_delays=False)
    yield s
    s.close()


@pytest.fixture
def window(qtbot: Any, scope: Any) -> Iterator[Any]:
    """The real main window (no modal dialogs), live view on."""
    from thinkscope_gui.ui.main_window import MainWindow

    w = MainWindow(scope, modal_errors=False, load_model=False)
    qtbot.addWidget(w)
    w.show()
    w.set_live(True)
    yield w
    w.close()


@pytest.fixture
def enhancing(qtbot: Any, window: Any, ui_env: Path) -> Any:
    """The window enhancing live with a small model for its objectives."""
    window.activate_model(make_model(ui_env / "m.safetensors", window.scope))
    qtbot.waitUntil(lambda: window.models.enhancer is not None, timeout=30000)
    qtbot.waitUntil(lambda: window.view.frame is not None, timeout=20000)
    window.live.job_seconds = None  # whole visible region: geometry is checked exactly
    return window


@contextmanager
def big_live_window(qtbot: Any, ui_env: Path,
                    size: tuple[int, int] | None = None) -> Iterator[Any]:
    """The window live on a 1024² sensor with a small model loaded (``size``: the window's
    size before it is shown); the big frames are what the live tests are about."""
    from hardware import open_microscope
    from thinkscope_gui.ui.main_window import MainWindow

    scope = open_microscope("sim", sensor=(1024, 1024), mechanical_delays=False)
    w = MainWindow(scope, modal_errors=False, load_model=False)
    qtbot.addWidget(w)
    if size is not None:
        w.resize(*size)
    w.show()
    w.set_live(True)
    w.activate_model(make_model(ui_env / "m.safetensors", scope))
    qtbot.waitUntil(lambda: w.models.enhancer is not None, timeout=30000)
    qtbot.waitUntil(lambda: w.view.frame is not None, timeout=30000)
    assert w.view.frame.shape[:2] == (1024, 1024)
    try:
        yield w
    finally:
        w.close()
        scope.close()
