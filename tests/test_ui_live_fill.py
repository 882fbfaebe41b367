"""Progressive fill-in: at fit, where one job may cover only part of a 1024² frame,
successive jobs fill the visible region tile by tile while the stage stays put, and a
stage move starts again from nothing (no tile from the old place survives)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_ui_support import big_live_window
from thinkscope_gui.ui.camera_view import OverlayMode
from thinkscope_gui.ui.enhance_worker import mosaic_tiles, resize_area

pytest_plugins = ["tests.test_ui_support"]

TILE_PX = 512 * 512   # a 1024² view in 4 tiles


@pytest.fixture
def big_window(qtbot: Any, ui_env: Path) -> Iterator[Any]:
    # a window this size gives a camera view of about 900 px beside the panels
    with big_live_window(qtbot, ui_env, size=(1800, 1000)) as w:
        w.live.max_job_px = TILE_PX
        yield w


def _grey(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return a.mean(-1) if a.ndim == 3 else a


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def _tile_correlations(view: Any, frame: np.ndarray, tiles: Any) -> list[float]:
    """Per tile: correlation of the canvas's enhanced pixels with ``frame`` there."""
    img = view.overlay_image()
    r0, c0 = view._enhanced_origin
    d = view.scale
    out = []
    for tr, tc, th, tw in tiles:
        y0, x0 = round((tr - r0) * d), round((tc - c0) * d)
        y1, x1 = round((tr + th - r0) * d), round((tc + tw - c0) * d)
        part = _grey(img[y0:y1, x0:x1, :3])
        ref = _grey(resize_area(np.ascontiguousarray(frame[tr:tr + th, tc:tc + tw]),
                                y1 - y0, x1 - x0))
        out.append(_corr(part, ref))
    return out


def test_mosaic_tiles_cover_the_rect_once() -> None:
    tiles = mosaic_tiles((10, 20, 1000, 700), 300 * 300, align=2)
    cover = np.zeros((1200, 1200), int)
    for r, c, h, w in tiles:
        assert h * w <= 300 * 300 and r % 2 == 0 and c % 2 == 0
        cover[r:r + h, c:c + w] += 1
    assert (cover[10:1010, 20:720] == 1).all() and cover.sum() == 1000 * 700
    cy, cx = 510, 370   # the centre tile comes first
    r, c, h, w = tiles[0]
    assert r <= cy < r + h and c <= cx < c + w
    assert mosaic_tiles((0, 0, 100, 100), 1e9) == ((0, 0, 100, 100),)


def test_fit_fills_in_then_a_stage_move_starts_again(qtbot: Any, big_window: Any) -> None:
    w = big_window
    view, live = w.view, w.live
    coverages: list[tuple[float, tuple | None]] = []
    stale: list[str] = []

    def on_enhanced(_n: int) -> None:
        coverages.append((live.coverage[0], view.enhanced_position))
        if view.enhanced_position != view.frame_position:
            stale.append(f"result from {view.enhanced_position} at {view.frame_position}")

    live.enhancedShown.connect(on_enhanced)
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    assert view.visible_rect() == (0, 0, 1024, 1024)   # fit: the whole frame is visible
    qtbot.waitUntil(lambda: live.coverage[0] >= 0.999, timeout=60000)
    n = live.coverage[1]
    assert n == 4
    # after a quick preview of the centre (the first job of a mode), it filled in over
    # several results, one tile each
    firsts = [c for c, _ in coverages if c > 0][:n]
    assert firsts == sorted(firsts) and firsts[0] == pytest.approx(1 / n, abs=0.02)
    assert live.fill_ms is not None
    assert "enhancing 1024² of 1024² in 4 tiles" in live.heads_up()
    img = view.overlay_image()
    assert img.ndim == 3 and img.shape[2] == 4 and (img[..., 3] == 255).all()
    assert view._enhanced_origin == (0, 0)
    assert img.shape[1] == pytest.approx(1024 * view.scale, abs=1)
    tiles = live._mosaic[2]
    here = view.frame.copy()
    # every tile shows this place (an enhanced copy of the frame, in the right spot)
    assert min(_tile_correlations(view, here, tiles)) > 0.8

    # the stage moves: nothing from the old place is shown, the mosaic starts again
    x0, y0 = w.scope.xy()
    coverages.clear()
    w.scope.set_xy(x0 + 20.0, y0)
    x = round(x0 + 20.0, 3)
    qtbot.waitUntil(lambda: view.frame_position is not None and view.frame_position[0] == x,
                    timeout=10000)
    assert view.enhanced_stale and not view.overlay_item.isVisible()
    qtbot.waitUntil(lambda: any(p is not None and p[0] == x for _, p in coverages),
                    timeout=60000)
    first_new = next(c for c, p in coverages if p is not None and p[0] == x)
    assert first_new == pytest.approx(1 / n, abs=0.02)   # one new tile, nothing old
    qtbot.waitUntil(lambda: live.coverage[0] >= 0.999 and view.enhanced_position[0] == x,
                    timeout=60000)
    there = view.frame.copy()
    new = _tile_correlations(view, there, live._mosaic[2])
    old = _tile_correlations(view, here, live._mosaic[2])
    assert min(new) > 0.8 and all(a > b + 0.2 for a, b in zip(new, old, strict=True)), (new, old)
    assert not stale, stale[:3]


def test_the_consistency_map_fills_in_too(qtbot: Any, big_window: Any) -> None:
    w = big_window
    view, live = w.view, w.live
    w.set_overlay_mode(OverlayMode.CONSISTENCY)
    w.set_enhancing(True)
    qtbot.waitUntil(lambda: live.coverage[0] >= 0.999, timeout=90000)
    assert live.coverage[1] == 4
    sigma = view.overlay_image()          # the σ map on the camera grid, every pixel
    assert sigma.shape == (1024, 1024) and np.isfinite(sigma).all()
    heat = view.heat_item.image           # its colours, opaque wherever it is drawn
    assert heat.ndim == 3 and heat.shape[2] == 4 and (heat[..., 3] > 0).all()
    assert "enhancing 1024² of 1024² in 4 tiles" in live.heads_up()


def test_a_mosaic_cut_for_the_wrong_cost_is_cut_again_without_blanking(
        qtbot: Any, big_window: Any) -> None:
    """Tiles cut for a job budget the worker no longer measures (here the budget drops
    4x after the first tiles, as when the first cut rested on one fast preview) are cut
    again into smaller ones; the canvas carries over, so coverage never falls back."""
    w = big_window
    view, live = w.view, w.live
    seen: list[tuple[int, float]] = []

    def on_enhanced(_n: int) -> None:
        if live._mosaic is not None:
            seen.append((len(live._mosaic[2]), live.coverage[0]))

    live.enhancedShown.connect(on_enhanced)
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    qtbot.waitUntil(lambda: live.coverage[1] == 4 and live.coverage[0] >= 0.74, timeout=60000)
    gen4 = live._mosaic[1]
    before = live.coverage[0]
    live.max_job_px = TILE_PX // 4     # the measured cost now says: 4x smaller jobs
    qtbot.waitUntil(lambda: live._mosaic is not None and live._mosaic[1] != gen4
                    and len(live._mosaic[2]) == 16 and live.coverage[0] >= 0.999,
                    timeout=60000)
    after = [c for n, c in seen if n == 16]
    assert after and min(after) >= before - 1e-6, (before, after[:4])
    tiles = live._mosaic[2]
    assert min(_tile_correlations(view, view.frame.copy(), tiles)) > 0.8
