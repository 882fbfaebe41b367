"""The live image display: camera frame, LUT, scale bar, cursor read-out and overlays.

All composition happens in the scene graph (items placed in camera-pixel coordinates,
enhanced images scaled by 1/scale), so no full-size composite is ever built per frame.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from qtpy.QtGui import QPen, QTransform
from qtpy.QtWidgets import QGraphicsRectItem, QLabel, QVBoxLayout, QWidget

from thinkscope_gui.app_model import OverlayMode  # noqa: F401 - the one definition, re-exported

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


NICE_LENGTHS_UM = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)
#: consistency map scale, fixed so frames compare: local RMS difference between the frame
#: and the enhanced image re-imaged through the input objective, in units of the frame's
#: own noise σ (learn.consistency.consistency_sigma). Camera noise reads about 1 σ and
#: stays dark below the floor; invented detail reads many σ.
CONSISTENCY_FLOOR = 1.5
CONSISTENCY_TOP = 6.0
#: a frame with more than this fraction of pixels at the camera's maximum is flagged
SATURATION_WARN = 0.005


class FastImageItem(pg.ImageItem):
    """An ImageItem that hands 8-bit images at full-range levels to Qt as they are.

    Why: pyqtgraph rescales a uint8 RGB image even for levels (0, 255), ~4 ms per 1024²
    frame on the GUI thread; without levels it wraps the array as an RGB888 QImage."""

    def render(self) -> None:
        lv, img = self.levels, self.image
        if (lv is not None and img is not None and img.dtype == np.uint8
                and (img.ndim == 3 or self.lut is None)
                and np.ndim(lv) == 1 and float(lv[0]) == 0.0 and float(lv[1]) == 255.0):
            self.levels = None
            try:
                super().render()
            finally:
                self.levels = lv
            return
        super().render()


def histogram(image: np.ndarray, target: int = 200) -> tuple[np.ndarray, np.ndarray] | None:
    """The display histogram (left bin edges, counts) of every ``step``-th pixel, the same
    bins and counts as pyqtgraph's ``ImageItem.getHistogram()`` at a fraction of its cost:
    its integer bins are equal-width but given as edges, which sends ``np.histogram`` to
    its sorting path (~5 ms per 1024² RGB frame on the GUI thread); here a bincount of
    the bin indices does it. None for an empty or all-NaN image."""
    if image.size == 0:
        return None
    sy = max(1, math.ceil(image.shape[0] / target))
    sx = max(1, math.ceil(image.shape[1] / target)) if image.ndim > 1 else 1
    data = np.ascontiguousarray(image[::sy, ::sx] if image.ndim > 1 else image[::sy])
    if data.dtype.kind in "ui":
        mn, mx = int(data.min()), int(data.max())
        mx = mx + 1 if mx == mn else mx
        step = math.ceil((mx - mn) / 500.0)
        edges = np.arange(mn, mx + 1.01 * step, step, dtype=int)
        wide = np.int32 if data.dtype.itemsize <= 2 else np.int64   # int32 divides fast
        idx = (data.ravel().astype(wide) - wide(mn)) // wide(step)
        counts = np.bincount(idx, minlength=len(edges) - 1)[:len(edges) - 1]
        return edges[:-1], counts
    data = data[np.isfinite(data)]
    if data.size == 0:
        return None
    lo, hi = float(data.min()), float(data.max())
    hi = hi + 1 if hi == lo else hi
    counts, edges = np.histogram(data, bins=499, range=(lo, hi))
    return edges[:-1], counts


def nice_scale_length(view_width_px: float, pixel_size_um: float) -> float:
    """A round length in µm close to a fifth of the visible width."""
    target = max(view_width_px, 1.0) * pixel_size_um / 5.0
    return min(NICE_LENGTHS_UM, key=lambda v: abs(math.log(v / target)))


class CameraView(QWidget):
    """Shows frames; emits the cursor position in camera pixels for the lens overlay."""

    cursorMoved = Signal(float, float)  # col, row in camera pixels
    readout = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._glw = pg.GraphicsLayoutWidget()
        self.view: pg.ViewBox = self._glw.addViewBox(lockAspect=True, invertY=True)
        self.image_item = FastImageItem()
        self.view.addItem(self.image_item)
        self.overlay_item = FastImageItem()
        self.overlay_item.setZValue(10)
        self.view.addItem(self.overlay_item)
        self.heat_item = FastImageItem()
        self.heat_item.setZValue(11)
        self.heat_item.setOpacity(0.6)
        self.heat_item.setColorMap(pg.colormap.get("inferno"))
        self.view.addItem(self.heat_item)
        self.lens_outline = QGraphicsRectItem()
        pen = QPen(Qt.GlobalColor.yellow)
        pen.setCosmetic(True)
        pen.setWidth(2)
        self.lens_outline.setPen(pen)
        self.lens_outline.setZValue(12)
        self.view.addItem(self.lens_outline)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("y", width=2))
        self.divider.setZValue(13)
        self.view.addItem(self.divider)
        self.contrast_roi = pg.RectROI([0, 0], [64, 64], pen=pg.mkPen("c"))
        self.contrast_roi.setZValue(14)
        self.view.addItem(self.contrast_roi)
        self.contrast_roi.hide()
        self.hist = pg.HistogramLUTItem(image=self.image_item)
        self._glw.addItem(self.hist)
        self.heat_bar = pg.ColorBarItem(values=(CONSISTENCY_FLOOR, CONSISTENCY_TOP),
                                        colorMap=pg.colormap.get("inferno"), interactive=False,
                                        label="inconsistency, σ of the frame's noise", width=14)
        self.heat_bar.setToolTip(
            "Consistency map: where the enhanced image, blurred back through the input "
            "objective, disagrees with the measured frame, in units of the frame's own "
            f"noise σ. Fixed scale {CONSISTENCY_FLOOR:g}–{CONSISTENCY_TOP:g} σ: camera "
            "noise and clean glass (about 1 σ) stay dark; bright areas are invented or "
            "lost detail.")
        #: the heat map's colours, applied in the enhancement worker (RGBA, 256 steps)
        self.heat_lut = pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=True)
        self._glw.addItem(self.heat_bar)
        # the histogram costs ~5 ms per 1024² frame: refresh it at 2 Hz, not per frame
        self.image_item.sigImageChanged.disconnect(self.hist.imageChanged)
        self._hist_timer = QTimer(self)
        self._hist_timer.timeout.connect(self._refresh_histogram)
        self._hist_timer.start(500)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._glw)
        # a click on the image gives it the keyboard: stage keys work only then
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._glw.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFocusProxy(self._glw)
        self.hud = QLabel(self)
        self.hud.setStyleSheet("QLabel { color: #fff; background: rgba(0,0,0,150); "
                               "padding: 3px 6px; font-family: monospace; }")
        self.hud.move(8, 8)
        self.hud.hide()
        self.warning = QLabel(self)
        self.warning.setStyleSheet("QLabel { color: #fff; background: rgba(200,30,30,200); "
                                   "padding: 3px 6px; font-weight: bold; }")
        self.warning.hide()
        self.auto_levels = False  # continuous auto-contrast (toolbar "Auto")
        self.saturated_fraction = 0.0
        self.lens_magnification = 2.0  # the lens shows a 1/m crop, enhanced, m times larger
        self._user_range = False  # the user zoomed: frames and mode changes keep the view
        #: the zoom (screen px per camera px) the user chose: kept when the view's size
        #: changes (the consistency colour bar appears, the window is resized), so 1:1
        #: stays 1:1 and the enhancement budget of a zoomed view stays its own
        self._zoom_hold: float | None = None

        self.frame: np.ndarray | None = None
        self.pixel_size_um = 1.0
        self.mode = OverlayMode.OFF
        self.scale = 1.0
        self.blend_alpha = 0.5
        self.lens_size = 128
        self.lens_center = (0.0, 0.0)  # col, row
        self.scale_bar_um = 0.0
        self._scale_bar: pg.ScaleBar | None = None
        self._levels: tuple[float, float] | None = None
        self._enhanced: np.ndarray | None = None
        self._enhanced_origin = (0, 0)
        #: stage position (x, y, z, objective) of the frame shown, and of the enhanced
        #: result shown: when they differ the overlay is stale and hidden until replaced
        self.frame_position: tuple | None = None
        self.enhanced_position: tuple | None = None
        self.enhanced_stale = False
        self.heat_sigma: np.ndarray | None = None  # the consistency map shown, σ units
        self._last_shape: tuple[int, ...] | None = None
        self.hist.sigLevelsChanged.connect(self._levels_from_histogram)
        self.view.sigRangeChanged.connect(lambda *_: self._update_scale_bar())
        self.view.sigRangeChangedManually.connect(lambda *_: self._user_zoomed())
        self.view.sigResized.connect(lambda *_: self._keep_zoom())
        self.divider.sigPositionChanged.connect(lambda *_: self._refresh_overlay())
        self._glw.scene().sigMouseMoved.connect(self._mouse_moved)
        self._apply_mode_visibility()

    def resizeEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        """A window resize keeps the whole frame in view unless the user zoomed."""
        super().resizeEvent(event)  # type: ignore[arg-type]
        if not self._user_range:
            QTimer.singleShot(0, self._fit_view)

    def set_hud(self, text: str) -> None:
        """The heads-up line drawn over the image (fps, enhanced fps, latency)."""
        self.hud.setText(text)
        self.hud.adjustSize()
        self.hud.setVisible(bool(text))
        self.hud.raise_()

    # ----------------------------------------------------------------- frames
    def set_frame(self, image: np.ndarray, pixel_size_um: float,
                  position: tuple | None = None) -> None:
        """Display a new camera frame (never blocks on enhancement). ``position``: where
        the stage was; an enhanced overlay from elsewhere is hidden until replaced."""
        first = self.frame is None or image.shape != self._last_shape
        self.frame = image
        self.frame_position = position
        self._check_stale()
        if self._levels is None:
            self._levels = self._default_levels(image)
        self.image_item.setImage(image, autoLevels=False, levels=self._levels)
        if first:
            self._last_shape = image.shape
            self.hist.setLevels(*self._levels)
            self.divider.setValue(image.shape[1] / 2)
            self.lens_center = (image.shape[1] / 2, image.shape[0] / 2)
            if not self._user_range:
                self._fit_view()
            self._refresh_overlay()
        if pixel_size_um != self.pixel_size_um or self._scale_bar is None:
            self.pixel_size_um = pixel_size_um
            self._update_scale_bar(force=True)

    def _refresh_histogram(self) -> None:
        """2 Hz: histogram, continuous auto-contrast and the saturation check."""
        if self.frame is None or not self.isVisible():
            return
        if self.auto_levels:
            self.auto_contrast()
        h = histogram(self.frame)   # = self.hist.imageChanged(autoLevel=False), cheaper
        if h is not None:
            self.hist.plot.setData(*h)
            self.hist.region.setRegion(self.image_item.getLevels())
        self.check_saturation()

    def check_saturation(self) -> float:
        """Fraction of (subsampled) pixels at the camera's maximum; warns above 0.5 %."""
        img = self.frame
        if img is None:
            return 0.0
        top = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
        step = max(1, int(math.sqrt(img.shape[0] * img.shape[1] / 65536)))
        sample = img[::step, ::step]
        hit = sample >= top
        if hit.ndim == 3:
            hit = hit.any(axis=-1)
        self.saturated_fraction = float(hit.mean())
        if self.saturated_fraction > SATURATION_WARN:
            self.warning.setText(f"saturated: {self.saturated_fraction:.1%} of pixels at "
                                 "maximum; lower the exposure")
            self.warning.adjustSize()
            self.warning.move(8, max(8, self.height() - self.warning.height() - 8))
            self.warning.show()
            self.warning.raise_()
        else:
            self.warning.hide()
        return self.saturated_fraction

    @staticmethod
    def _default_levels(image: np.ndarray) -> tuple[float, float]:
        if np.issubdtype(image.dtype, np.integer):
            return (0.0, float(np.iinfo(image.dtype).max))
        return (0.0, 1.0)

    def auto_contrast(self, low_pct: float = 0.5, high_pct: float = 99.5) -> tuple[float, float]:
        """Set levels from percentiles of the contrast ROI if shown, else of the visible area."""
        if self.frame is None:
            return (0.0, 1.0)
        h, w = self.frame.shape[:2]
        if self.contrast_roi.isVisible():
            (x0, y0), (sx, sy) = self.contrast_roi.pos(), self.contrast_roi.size()
            x1, y1 = x0 + sx, y0 + sy
        else:
            (x0, x1), (y0, y1) = self.view.viewRange()
        c0, c1 = int(np.clip(x0, 0, w - 1)), int(np.clip(math.ceil(x1), 1, w))
        r0, r1 = int(np.clip(y0, 0, h - 1)), int(np.clip(math.ceil(y1), 1, h))
        region = self.frame[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)]
        step = max(1, int(math.sqrt(region.shape[0] * region.shape[1] / 65536)))
        sample = region[::step, ::step]
        lo, hi = np.percentile(sample, [low_pct, high_pct])
        if hi <= lo:
            hi = lo + 1
        self.set_levels(float(lo), float(hi))
        return self._levels  # type: ignore[return-value]

    def set_levels(self, lo: float, hi: float) -> None:
        self._levels = (lo, hi)
        self.hist.setLevels(lo, hi)
        self.image_item.setLevels(self._levels)
        self._apply_overlay_levels()

    def _levels_from_histogram(self, *_: object) -> None:
        self._levels = tuple(self.hist.getLevels())  # type: ignore[assignment]
        self._apply_overlay_levels()

    def _apply_overlay_levels(self) -> None:
        """Overlays arrive as 8-bit display images made with the levels of their job; the
        next result follows a levels change."""

    def _fit_view(self) -> None:
        if self.frame is None:
            return
        h, w = self.frame.shape[:2]
        width = 2 * w if self.mode == OverlayMode.SIDE_BY_SIDE else w
        self.view.setRange(QRectF(0, 0, width, h), padding=0.0)

    # ------------------------------------------------------------------- zoom
    def fit(self) -> None:
        """Whole frame in the window (and frames follow it again)."""
        self._user_range = False
        self._zoom_hold = None
        self._fit_view()

    def zoom(self, factor: float) -> None:
        """Zoom in (factor > 1) or out about the centre of the view; the zoom is kept."""
        self.view.scaleBy((1.0 / factor, 1.0 / factor))
        self._user_zoomed()

    def one_to_one(self) -> None:
        """One camera pixel per screen pixel, centred where the view is now."""
        self.zoom_to(1.0)

    def zoom_to(self, factor: float, centre: tuple[float, float] | None = None) -> None:
        """``factor`` screen pixels per camera pixel about ``centre`` (x, y in camera
        pixels; default: where the view is now); held like any zoom the user chose."""
        self._set_zoom(factor, centre)
        self._user_zoomed()

    def _set_zoom(self, factor: float, centre: tuple[float, float] | None = None) -> None:
        (x0, x1), (y0, y1) = self.view.viewRange()
        cx, cy = centre if centre is not None else ((x0 + x1) / 2, (y0 + y1) / 2)
        ratio = self.devicePixelRatioF() or 1.0
        w, h = self.view.width() * ratio / factor, self.view.height() * ratio / factor
        self.view.setRange(QRectF(cx - w / 2, cy - h / 2, w, h), padding=0.0)

    def _user_zoomed(self) -> None:
        self._user_range = True
        self._zoom_hold = self.zoom_factor()

    def _keep_zoom(self) -> None:
        """The view changed size: a zoom the user chose stays that zoom (about the same
        centre); a fitted view is re-fitted by resizeEvent."""
        hold = self._zoom_hold
        if self._user_range and hold and abs(self.zoom_factor() / hold - 1.0) > 1e-3:
            self._set_zoom(hold)

    def zoom_factor(self) -> float:
        """Screen pixels per camera pixel now (1.0 at 1:1)."""
        (x0, x1), _ = self.view.viewRange()
        ratio = self.devicePixelRatioF() or 1.0
        return self.view.width() * ratio / max(x1 - x0, 1e-9)

    # -------------------------------------------------------------- scale bar
    def _update_scale_bar(self, force: bool = False) -> None:
        """Keep a round µm length about a fifth of the view wide, following the pixel size."""
        (x0, x1), _ = self.view.viewRange()
        length = float(nice_scale_length(x1 - x0, self.pixel_size_um))
        if not force and length == self.scale_bar_um and self._scale_bar is not None:
            return
        self.scale_bar_um = length
        if self._scale_bar is None:
            self._scale_bar = pg.ScaleBar(size=length / self.pixel_size_um, suffix="",
                                          offset=(-20, -20), brush="w", pen="k")
            self._scale_bar.setParentItem(self.view)
            # white on a dark backing: readable on bright and dark specimens alike
            self._scale_bar.text.fill = pg.mkBrush(0, 0, 0, 170)
            self._scale_bar.text.setColor("w")
        self._scale_bar.size = length / self.pixel_size_um
        self._scale_bar.text.setText(f"{length:g} µm")
        self._scale_bar.updateBar()

    @property
    def scale_bar_px(self) -> float:
        """Length of the scale bar in camera pixels (scale_bar_um / pixel size)."""
        return self.scale_bar_um / self.pixel_size_um

    # ---------------------------------------------------------------- cursor
    def _mouse_moved(self, pos: QPointF) -> None:
        if self.frame is None or not self.view.sceneBoundingRect().contains(pos):
            return
        p = self.view.mapSceneToView(pos)
        col, row = p.x(), p.y()
        self.cursorMoved.emit(col, row)
        if self.mode == OverlayMode.LENS:
            self.set_lens_center(col, row)
        h, w = self.frame.shape[:2]
        r, c = int(math.floor(row)), int(math.floor(col))
        if 0 <= r < h and 0 <= c < w:
            value = self.frame[r, c]
            text = ",".join(str(v) for v in np.atleast_1d(value).tolist())
            self.readout.emit(f"px ({c}, {r})  value ({text})")

    # --------------------------------------------------------------- overlays
    def set_mode(self, mode: OverlayMode | str) -> None:
        self.mode = OverlayMode(mode)
        self._enhanced = None
        self.heat_sigma = None
        self.enhanced_position = None
        self.enhanced_stale = False
        self.overlay_item.clear()
        self.heat_item.clear()
        self._apply_mode_visibility()
        if not self._user_range:  # a zoom the user chose survives a mode change
            self._fit_view()

    def _apply_mode_visibility(self) -> None:
        m, live = self.mode, not self.enhanced_stale
        self.overlay_item.setVisible(live and m not in (OverlayMode.OFF,
                                                        OverlayMode.CONSISTENCY))
        self.heat_item.setVisible(live and m == OverlayMode.CONSISTENCY)
        self.heat_bar.setVisible(m == OverlayMode.CONSISTENCY)
        self.lens_outline.setVisible(m == OverlayMode.LENS)
        self.divider.setVisible(m == OverlayMode.WIPE)
        self.overlay_item.setOpacity(self.blend_alpha if m == OverlayMode.BLEND else 1.0)
        self._update_lens_outline()

    def set_blend_alpha(self, alpha: float) -> None:
        self.blend_alpha = float(np.clip(alpha, 0.0, 1.0))
        if self.mode == OverlayMode.BLEND:
            self.overlay_item.setOpacity(self.blend_alpha)

    def set_lens_center(self, col: float, row: float) -> None:
        self.lens_center = (col, row)
        self._update_lens_outline()

    def lens_rect(self) -> tuple[int, int, int, int]:
        """(row0, col0, height, width) of the lens in camera pixels, clamped to the frame."""
        if self.frame is None:
            return (0, 0, self.lens_size, self.lens_size)
        h, w = self.frame.shape[:2]
        size_r, size_c = min(self.lens_size, h), min(self.lens_size, w)
        c0 = int(np.clip(round(self.lens_center[0] - size_c / 2), 0, w - size_c))
        r0 = int(np.clip(round(self.lens_center[1] - size_r / 2), 0, h - size_r))
        # even sizes keep round(size*scale) exact for the usual 2.5
        return (r0, c0, size_r - size_r % 2, size_c - size_c % 2)

    def lens_source_rect(self) -> tuple[int, int, int, int]:
        """(row0, col0, height, width) of the camera pixels the lens enhances: the centre
        1/m of the lens, shown m times larger so the lens magnifies."""
        r0, c0, hh, ww = self.lens_rect()
        m = max(1.0, float(self.lens_magnification))
        sh, sw = int(hh / m) // 2 * 2, int(ww / m) // 2 * 2
        sh, sw = max(sh, 2), max(sw, 2)
        return (r0 + (hh - sh) // 2, c0 + (ww - sw) // 2, sh, sw)

    def visible_rect(self) -> tuple[int, int, int, int] | None:
        """(row0, col0, height, width) of the camera pixels on screen in the part of the
        view that shows enhancement (the right panel side by side, left of the divider
        in the wipe); None when none of it is visible."""
        if self.frame is None:
            return None
        h, w = self.frame.shape[:2]
        (x0, x1), (y0, y1) = self.view.viewRange()
        if self.mode == OverlayMode.SIDE_BY_SIDE:
            x0, x1 = x0 - w, x1 - w
        if self.mode == OverlayMode.WIPE:
            x1 = min(x1, self.divider.value())
        c0, c1 = max(0, math.floor(x0)), min(w, math.ceil(x1))
        r0, r1 = max(0, math.floor(y0)), min(h, math.ceil(y1))
        if c1 - c0 < 2 or r1 - r0 < 2:
            return None
        return (r0, c0, r1 - r0, c1 - c0)

    def enhance_target(self, model_scale: float, align: int = 1, max_px: float = math.inf
                       ) -> tuple[tuple[int, int, int, int], float, tuple[int, int]] | None:
        """What the enhancer should compute now: the camera-pixel rect, the output pixels
        per camera pixel the screen can show (never more than ``model_scale``), and the
        visible size it stands for. Above ``max_px`` camera pixels the rect shrinks about
        the centre of the view (the heads-up line says so). Edges lie on multiples of
        ``align`` (the scale's denominator) so outputs land on whole pixels."""
        if self.frame is None or self.mode == OverlayMode.OFF:
            return None
        zoom = max(self.zoom_factor(), 1e-6)
        if self.mode == OverlayMode.LENS:
            r0, c0, sh, sw = self.lens_source_rect()
            lw = self.lens_rect()[3]
            return ((r0, c0, sh, sw), min(model_scale, zoom * lw / max(sw, 1)), (sh, sw))
        vis = self.visible_rect()
        if vis is None:
            return None
        fh, fw = self.frame.shape[:2]
        r0, c0, vh, vw = vis
        h, w = vh, vw
        if h * w > max_px:
            f = math.sqrt(max_px / (h * w))
            # in steps of 16: the size (and the caches keyed on it) stays put frame to frame
            h, w = max(2 * align, int(h * f) // 16 * 16), max(2 * align, int(w * f) // 16 * 16)
            r0, c0 = r0 + (vh - h) // 2, c0 + (vw - w) // 2
        a = max(1, int(align))
        r1, c1 = min(fh, -(-(r0 + h) // a) * a), min(fw, -(-(c0 + w) // a) * a)
        r0, c0 = r0 // a * a, c0 // a * a
        return ((r0, c0, r1 - r0, c1 - c0), min(model_scale, zoom), (vh, vw))

    def _update_lens_outline(self) -> None:
        r0, c0, hh, ww = self.lens_rect()
        self.lens_outline.setRect(QRectF(c0, r0, ww, hh))
        if self.mode == OverlayMode.LENS and self._enhanced is not None:
            self._refresh_overlay()

    def set_enhanced(self, enhanced: np.ndarray, origin: tuple[int, int], scale: float,
                     position: tuple | None = None) -> None:
        """Show an enhanced image whose top-left sits at camera pixel ``origin`` (row, col),
        ``scale`` of its pixels per camera pixel, taken at stage ``position``."""
        self._enhanced = enhanced
        self._enhanced_origin = origin
        self.scale = scale
        self._mark_fresh(position)
        self._refresh_overlay()

    def set_consistency(self, heat: np.ndarray, origin: tuple[int, int] = (0, 0),
                        scale: float = 1.0, sigma: np.ndarray | None = None,
                        position: tuple | None = None) -> None:
        """Show the consistency heat map (RGBA made by the worker on the fixed σ scale, or
        a σ map coloured here) over camera pixels from ``origin``, ``scale`` px each."""
        if heat.ndim == 2:
            self.heat_item.setImage(heat, autoLevels=False,
                                    levels=(CONSISTENCY_FLOOR, CONSISTENCY_TOP))
        else:
            self.heat_item.setImage(heat, autoLevels=False, levels=(0, 255))
        self.heat_sigma = heat if sigma is None else sigma
        tr = QTransform()
        tr.translate(origin[1], origin[0])
        tr.scale(1.0 / scale, 1.0 / scale)
        self.heat_item.setTransform(tr)
        self._mark_fresh(position)

    def _mark_fresh(self, position: tuple | None) -> None:
        self.enhanced_position = position
        if self.enhanced_stale:
            self.enhanced_stale = False
            self._apply_mode_visibility()

    def _check_stale(self) -> None:
        """Hide the enhanced overlay once the stage has moved away from where it was made."""
        stale = (self.enhanced_position is not None
                 and self.frame_position != self.enhanced_position)
        if stale != self.enhanced_stale:
            self.enhanced_stale = stale
            self._apply_mode_visibility()

    def _refresh_overlay(self) -> None:
        img = self._enhanced
        if img is None or self.mode in (OverlayMode.OFF, OverlayMode.CONSISTENCY):
            return
        r0, c0 = self._enhanced_origin
        s = self.scale
        if self.mode == OverlayMode.LENS:
            # drawn over the whole lens: a crop of 1/m of it, m times larger
            lr0, lc0, lh, lw = self.lens_rect()
            tr = QTransform()
            tr.translate(lc0, lr0)
            tr.scale(lw / img.shape[1], lh / img.shape[0])
            self.overlay_item.setImage(img, autoLevels=False, levels=self._overlay_levels(img))
            self.overlay_item.setTransform(tr)
            return
        if self.mode == OverlayMode.WIPE:
            cut = int(round(np.clip(self.divider.value() - c0, 0, img.shape[1] / s) * s))
            img = img[:, :max(cut, 1)]
        if self.mode == OverlayMode.SIDE_BY_SIDE and self.frame is not None:
            c0 = c0 + self.frame.shape[1]
        tr = QTransform()
        tr.translate(c0, r0)
        tr.scale(1.0 / s, 1.0 / s)
        self.overlay_item.setImage(img, autoLevels=False, levels=self._overlay_levels(img))
        self.overlay_item.setTransform(tr)

    def _overlay_levels(self, img: np.ndarray) -> tuple[float, float] | None:
        """8-bit display images from the worker are shown as they are (no per-paint LUT)."""
        if img.dtype == np.uint8:
            return (0.0, 255.0)
        return self._levels

    def overlay_image(self) -> np.ndarray | None:
        """The array the current overlay shows (for tests and export)."""
        if self.mode == OverlayMode.CONSISTENCY:
            return self.heat_sigma if self.heat_sigma is not None else self.heat_item.image
        if self.mode == OverlayMode.OFF:
            return None
        return self.overlay_item.image
