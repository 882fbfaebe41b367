"""Training panel: pick stores and settings, train in the background, watch curves/preview.

The Trainer runs in its own thread and reports TrainStatus snapshots through a callback;
an EventBridge turns those into queued Qt signals, so the microscope stays usable.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..model_form import ModelForm
from ..settings import app_settings, thinkscope_home
from ..widgets import StatusLabel, unique_path
from ..workers import EventBridge, FunctionWorker, start_worker

if TYPE_CHECKING:
    from thinkscope_gui.app_model import AppModel

#: what an operator sets for nearly every run, shown at the top of the form
FIRST = ("arch", "epochs", "steps_per_epoch", "batch_size", "patch", "lr", "loss", "out",
         "warm_start", "patience")
EXCLUDE = ("stores", "folders", "command", "checkpoint", "arch_params", "sim_tissues",
           "resume", "device")


def default_output() -> str:
    """A fresh model file name in $THINKSCOPE_HOME/models."""
    return str(unique_path(thinkscope_home() / "models"
                           / time.strftime("model_%Y%m%d_%H%M%S.safetensors")))



class TrainingPanel(QWidget):
    """Start/stop a Trainer; live loss, validation PSNR vs bicubic, per-epoch preview."""

    def __init__(self, app: AppModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from thinkscope_gui.learn.train import TrainConfig

        self.app = app
        self.stores = QListWidget()
        add, remove = QPushButton("Add store…"), QPushButton("Remove")
        add.clicked.connect(self._add_dialog)
        remove.clicked.connect(lambda: [self.stores.takeItem(self.stores.row(i))
                                        for i in self.stores.selectedItems()])
        warm = QPushButton("Warm start from active model")
        warm.clicked.connect(self._warm_from_active)
        cfg = TrainConfig(out=default_output(), threads=1)
        saved = app_settings().value("training/config", "")
        if saved:
            # last settings with a fresh output name; invalid ones are ignored
            with contextlib.suppress(Exception):
                cfg = TrainConfig.model_validate_json(str(saved)).model_copy(
                    update={"out": default_output()})
        self.form = ModelForm(cfg, exclude=EXCLUDE, first=FIRST)
        scroll = QScrollArea()
        scroll.setMinimumHeight(60)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.toggle)
        # hand the same job to a bigger machine or a cluster: torchrun with N processes
        self.procs = QSpinBox()
        self.procs.setRange(1, 1024)
        self.procs.setValue(2)
        self.procs.setPrefix("processes: ")
        self.command_button = QPushButton("Copy torchrun command")
        self.command_button.setToolTip("copy the command that trains these settings with "
                                       "N processes (torchrun; see README for SLURM)")
        self.command_button.clicked.connect(self.copy_command)
        self.replace_box = QCheckBox("replace an existing model file")
        self.replace_box.setToolTip("Off (default): a run whose output file exists writes "
                                    "name_2, name_3, … instead, so no model is lost.")
        self.progress = QProgressBar()
        self.status = StatusLabel("idle", lines=3)
        self.loss_plot = pg.PlotWidget(title="training loss")
        self.loss_curve = self.loss_plot.plot(pen="y")
        # the legend lives in the title so it never hides the curves
        self.psnr_plot = pg.PlotWidget(
            title="val PSNR (dB): <span style='color:#3c3'>● model</span> "
                  "<span style='color:#e33'>▲ bicubic</span>")
        self.psnr_curve = self.psnr_plot.plot(pen="g", symbol="o", symbolBrush="g",
                                              name="model")
        self.bicubic_curve = self.psnr_plot.plot(pen="r", symbol="t", symbolBrush="r",
                                                 name="bicubic")
        self.loss_plot.setLabel("bottom", "step")
        self.psnr_plot.setLabel("bottom", "epoch")
        for p in (self.loss_plot, self.psnr_plot):
            p.setMinimumHeight(80)
        self.preview = pg.GraphicsLayoutWidget()
        self.preview.setMinimumHeight(80)
        self.preview_items = []
        for col, title in enumerate(("input (LR)", "model output",
                                     "target (HR)")):
            self.preview.addLabel(title, row=0, col=col)
            vb = self.preview.addViewBox(row=1, col=col, lockAspect=True, invertY=True)
            item = pg.ImageItem()
            vb.addItem(item)
            vb.setToolTip(title)
            self.preview_items.append(item)

        for store in cfg.stores:
            if Path(store).exists():
                self.stores.addItem(store)
        self.stores.setMaximumHeight(90)
        self.stores.setMinimumHeight(40)
        row = QHBoxLayout()
        for w in (add, remove, warm):
            row.addWidget(w)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button)
        run_row.addWidget(self.replace_box)
        curves = QWidget()
        curves_lay = QHBoxLayout(curves)
        curves_lay.setContentsMargins(0, 0, 0, 0)
        curves_lay.addWidget(self.loss_plot)
        curves_lay.addWidget(self.psnr_plot)
        # form, curves and preview share the height the screen has; the run controls stay
        # above them so they are never pushed off a small screen
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(scroll)
        split.addWidget(curves)
        split.addWidget(self.preview)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Pair stores"))
        lay.addWidget(self.stores)
        lay.addLayout(row)
        lay.addLayout(run_row)
        handoff = QHBoxLayout()
        handoff.addWidget(self.procs)
        handoff.addWidget(self.command_button, 1)
        lay.addLayout(handoff)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)

        self.trainer: Any = None
        self.last_status: Any = None
        self._bridge = EventBridge(self)
        self._bridge.event.connect(self._on_status)
        self._losses: list[float] = []
        self._epochs_seen = 0
        self._val_tile: Any = None
        self._preview_worker: FunctionWorker | None = None
        self.previews = 0
        # stores acquired in this session (the app model's list) appear here
        self._stores_changed(app.stores)
        app.events.stores.connect(self._stores_changed)

    # ---------------------------------------------------------------- inputs
    def _stores_changed(self, paths: tuple[str, ...]) -> None:
        for p in paths:
            self.add_store(p)

    def add_store(self, path: str | Path) -> None:
        if str(path) not in self.store_paths():
            self.stores.addItem(str(path))

    def store_paths(self) -> list[str]:
        return [self.stores.item(i).text() for i in range(self.stores.count())]

    def _add_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Pair stores", "", "HDF5 (*.h5 *.hdf5)")
        for p in paths:
            self.add_store(p)

    def _warm_from_active(self) -> None:
        path: str | Path | None = self.app.model.path
        if path is None:
            from thinkscope_gui.learn.meta import MODELS_DIR

            path = MODELS_DIR / "default_fast.safetensors"
        raw = self.form.raw()
        raw["warm_start"] = str(path)
        self.form.set_value(type(self.form.value()).model_validate(raw))

    def config(self, **overrides: Any) -> Any:
        """The TrainConfig the form describes, with the listed stores."""
        from thinkscope_gui.learn.train import TrainConfig

        raw = self.form.raw()
        raw.update(stores=self.store_paths(), **overrides)
        if not raw.get("command"):
            raw["command"] = "ThinkScope GUI training panel"
        return TrainConfig.model_validate(raw)

    def copy_command(self) -> str:
        """Put the torchrun command for the form's settings on the clipboard (and show it)."""
        from thinkscope_gui.cli.train import train_command

        try:
            cmd = train_command(self.config(), self.procs.value())
        except Exception as exc:  # noqa: BLE001
            self.app.report("Training settings", str(exc))
            return ""
        QApplication.clipboard().setText(cmd)
        self.status.setText(f"copied: {cmd}")
        return cmd

    # ---------------------------------------------------------------- control
    def running(self) -> bool:
        return self.trainer is not None

    def toggle(self) -> None:
        if self.trainer is not None:
            self.trainer.cancel()
            self.status.setText("stopping after this step…")
            return
        try:
            cfg = self.config()
        except Exception as exc:  # noqa: BLE001
            self.app.report("Training settings", str(exc))
            return
        self.start(cfg)

    def start(self, cfg: Any) -> None:
        """Start a Trainer on ``cfg`` in the background."""
        from thinkscope_gui.learn.train import Trainer

        if not cfg.stores and not cfg.folders and not cfg.sim_pairs:
            self.app.report("Training", "add at least one pair store")
            return
        if not self.replace_box.isChecked():
            out = unique_path(cfg.out)
            if str(out) != cfg.out:
                cfg = cfg.model_copy(update={"out": str(out)})
        self._set_form_out(cfg.out)
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        self._losses.clear()
        self._epochs_seen = 0
        self._val_tile = None
        self.loss_curve.setData([], [])
        self.psnr_curve.setData([], [])
        self.bicubic_curve.setData([], [])
        self.cfg = cfg
        self.trainer = Trainer(cfg, self._bridge)
        self.start_button.setText("Stop training")
        self.progress.setRange(0, cfg.epochs * cfg.steps_per_epoch)
        # a job of the app's runner: no stand lease (the microscope stays usable)
        self.app.try_start_job(self.trainer, "Training")

    def _set_form_out(self, out: str) -> None:
        """Show the output the run really writes (after a unique name was chosen)."""
        raw = self.form.raw()
        if raw.get("out") != out:
            raw["out"] = out
            with contextlib.suppress(Exception):
                self.form.set_value(type(self.form.value()).model_validate(raw))

    def _on_status(self, st: Any) -> None:
        from thinkscope_gui.learn.train import FINAL_STATES

        self.last_status = st
        done_steps = max(0, (st.epoch - 1)) * st.steps_per_epoch + st.step
        self.progress.setValue(min(done_steps, self.progress.maximum()))
        eta = f", ETA {st.eta_s:.0f} s" if st.eta_s == st.eta_s and st.eta_s > 0 else ""
        psnr = st.metrics.get("psnr")
        bic = st.metrics.get("bicubic_psnr")
        val = f", val PSNR {psnr:.2f} dB (bicubic {bic:.2f})" if psnr is not None else ""
        self.status.setText(f"{st.state}: epoch {st.epoch}/{st.epochs}, loss {st.loss:.4g}"
                            f"{val}{eta}. {st.message}")
        if st.loss == st.loss and st.state == "training":
            self._losses.append(st.loss)
            self.loss_curve.setData(np.arange(len(self._losses)), np.array(self._losses))
        if len(st.history) > self._epochs_seen:
            self._epochs_seen = len(st.history)
            ep = [h["epoch"] for h in st.history]
            self.psnr_curve.setData(ep, [h.get("psnr", np.nan) for h in st.history])
            self.bicubic_curve.setData(ep, [h.get("bicubic_psnr", np.nan) for h in st.history])
            self._update_preview()
        if st.state in FINAL_STATES:
            self.trainer = None
            self.start_button.setText("Start training")
            if st.state == "failed":
                self.app.report("Training failed", st.message)
            self.app.catalogue_changed()  # the Models panel re-scans

    # ---------------------------------------------------------------- preview
    def _update_preview(self) -> None:
        """Enhance one validation pair with the newest saved model (in a worker)."""
        if self._preview_worker is not None:
            return
        cfg = self.cfg
        out = Path(cfg.out)
        if not out.is_file():
            return
        cached = self._val_tile

        def job(token: Any, progress: Any) -> Any:
            from thinkscope_gui.learn import Enhancer
            from thinkscope_gui.learn.dataset import load_tiles, split_by_tile
            from thinkscope_gui.learn.train import build_sources

            tile = cached
            if tile is None:
                tiles = load_tiles(build_sources(cfg))
                train, val = split_by_tile(tiles, cfg.val_fraction, cfg.seed)
                tile = (val or train)[0]
            enh = Enhancer.load(out, device="cpu")
            return tile, enh.enhance(np.asarray(tile.lr))

        def done(result: Any) -> None:
            self._preview_worker = None
            tile, pred = result
            self._val_tile = tile
            for item, img in zip(self.preview_items, (tile.lr, pred, tile.hr), strict=True):
                item.setImage(np.asarray(img), autoLevels=True)
            self.previews += 1

        def failed(msg: str) -> None:
            self._preview_worker = None
            self.status.setText(self.status.text() + f" (preview: {msg})")

        self._preview_worker = start_worker(self, job, done, failed)

    def shutdown(self) -> None:
        """Remember the settings; stop training (the best model so far is kept)."""
        try:
            s = app_settings()
            s.setValue("training/config", self.config().model_dump_json())
            s.sync()
        except Exception:  # noqa: BLE001, S110 - invalid edits are not saved
            pass
        if self.trainer is not None:
            self.trainer.cancel()
            self.trainer.wait(10)
        if self._preview_worker is not None:
            self._preview_worker.wait(10000)
