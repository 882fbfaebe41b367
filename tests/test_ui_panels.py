"""Acquisition, training, models and objectives panels driven through the real window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_ui_support import make_model
from thinkscope_gui.ui.panels.model_catalog import staleness

pytest_plugins = ["tests.test_ui_support"]


@pytest.fixture
def pairs_file(qtbot: Any, window: Any, ui_env: Path) -> Path:
    """Run a tiny 2x1 acquisition from the panel; returns the HDF5 store."""
    from thinkscope_gui.pairs.plan import AcquisitionPlan, AutofocusSettings

    panel = window.panels["Acquisition"]
    out = ui_env / "pairs.h5"
    panel.set_plan(AcquisitionPlan(grid=(2, 1), center_um=(5000.0, 0.0), output=str(out),
                                   autofocus=AutofocusSettings(search_range_um=4.0,
                                                               coarse_step_um=1.0,
                                                               fine_step_um=0.5)))
    assert len(panel.map.states) == 2  # planned tiles drawn before the run
    assert panel.start()
    assert not window.stage_widget.isEnabled()  # manual moves locked during the run
    from thinkscope_gui.pairs.engine import RunState

    engine = panel.engine
    qtbot.waitUntil(lambda: engine.state != RunState.IDLE, timeout=10000)
    if engine.state == RunState.RUNNING:
        panel.toggle_pause()
        assert engine.state == RunState.PAUSED and panel.pause_button.text() == "Resume"
        panel.toggle_pause()
        assert engine.state == RunState.RUNNING
    qtbot.waitUntil(lambda: not panel.running(), timeout=120000)
    return out


def test_acquisition_panel_writes_pairs(window: Any, pairs_file: Path) -> None:
    from thinkscope_gui.pairs.store import PairStore

    panel = window.panels["Acquisition"]
    assert panel.events[-1].kind == "finished", panel.eta.text()
    with PairStore(pairs_file) as store:
        ids = store.pair_ids(accepted_only=False)
        assert len(ids) == 2
        assert store.lr(ids[0]).shape[0] > 0
    done = panel.map.count("accepted") + panel.map.count("rejected")
    assert done == 2
    assert "last pair" in panel.last_pair.text() and "correlation" in panel.last_pair.text()
    assert window.stage_widget.isEnabled()
    if panel.map.count("accepted"):
        assert str(pairs_file) in window.panels["Training"].store_paths()


def test_training_panel_produces_model(qtbot: Any, window: Any, ui_env: Path) -> None:
    from thinkscope_gui.learn.modelfile import read_meta
    from thinkscope_gui.learn.train import TrainConfig

    panel = window.panels["Training"]
    out = ui_env / "home" / "models" / "tiny.safetensors"
    panel.form.set_value(TrainConfig(sim_pairs=6, sim_tile=64, epochs=2, steps_per_epoch=2,
                                     batch_size=2, patch=16, out=str(out), threads=1,
                                     max_val_tiles=2))
    panel.toggle()
    assert panel.running()
    qtbot.waitUntil(lambda: not panel.running(), timeout=120000)
    assert panel.last_status.state == "done", panel.status.text()
    assert out.is_file()
    meta = read_meta(out)
    assert meta.epochs >= 1 and "psnr" in meta.metrics and "bicubic_psnr" in meta.metrics
    assert len(panel.psnr_curve.getData()[0]) == 2
    qtbot.waitUntil(lambda: panel.previews >= 1, timeout=60000)
    # the Models panel lists it and it can be activated without stalling the view
    models = window.panels["Models"]
    models.refresh()
    assert models.status_of(out) == "ok"
    window.activate_model(out)
    qtbot.waitUntil(lambda: window.models.path == out, timeout=30000)


def test_retired_objective_marks_model_stale(qtbot: Any, window: Any, ui_env: Path) -> None:
    path = make_model(ui_env / "home" / "models" / "m.safetensors", window.scope)
    models = window.panels["Models"]
    models.refresh()
    assert models.status_of(path) == "ok"
    profiles = dict(window.scope.profiles)
    profiles["100x"] = profiles["100x"].model_copy(update={"retired": True})
    assert window.panels["Objectives"].apply_and_save(profiles)
    assert "retired" in models.status_of(path)
    assert (ui_env / "home" / "objectives.json").is_file()
    from thinkscope_gui.learn.modelfile import read_meta

    assert "retired" in staleness(read_meta(path), window.scope.profiles)


def test_models_panel_imports_a_model(window: Any, ui_env: Path) -> None:
    src = make_model(ui_env / "elsewhere" / "shared.safetensors", window.scope)
    models = window.panels["Models"]
    dest = models.import_model(src)
    assert dest == ui_env / "home" / "models" / "shared.safetensors" and dest.is_file()
    assert models.status_of(dest) == "ok"
    assert "40x → 100x" in [models.table.item(r, 1).text() for r in range(len(models.entries))]
