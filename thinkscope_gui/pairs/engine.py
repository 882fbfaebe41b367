"""The acquisition engine: tiles -> autofocus -> snap -> register -> gate -> store.

Why this order: all LR (dry) tiles first, then a single objective change, then all HR (oil)
tiles. One swap means one retract, one oil contact, no oil on the dry objective, and the
inter-objective offset is measured once (on the first HR tile) and reused. Raw LR frames are
stored as they are taken, so a crash in the HR phase loses nothing already imaged.

The engine is headless: it reports through ``on_event(event)`` callbacks with typed events
(:class:`Started`, :class:`TileDone`, :class:`PairStored`, :class:`PairRejected`,
:class:`Finished`, :class:`Failed`), each carrying a frozen status snapshot; the GUI turns
them into signals. Its life cycle is :class:`thinkscope_gui.jobs.JobControl`'s, so a cancel
during any step (autofocus included) ends ``FinishReason.CANCELLED``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from thinkscope_gui.jobs import Cancelled, FinishReason, JobControl, JobStatus, RunState

from .autofocus import AutofocusResult, FocusMap, autofocus, focus_metric
from .plan import AcquisitionPlan, AutofocusSettings, PlanError, Tile, choose_patch_px
from .quality import saturated_fraction, tissue_fraction
from .registration import Registration, RegistrationError, cut_patches, register
from .store import LRTileRecord, PairRecord, PairWriter, StoreError, StoreHeader

if TYPE_CHECKING:
    from hardware.microscope import Microscope

__all__ = ["AcquisitionEngine", "AcquisitionEvent", "AcquisitionStatus", "Failed", "Finished",
           "FinishReason", "PairRejected", "PairStored", "RunState", "Started", "TileDone"]

#: a tile whose central field is less stained than this is "glass"
MIN_TISSUE_FRACTION = 0.05
_log = logging.getLogger(__name__)
PHASES = ("move", "focus", "snap", "register", "write", "swap")


@dataclass(frozen=True)
class AcquisitionStatus:
    """Immutable snapshot of a run, safe to hand to another thread."""

    state: RunState = RunState.IDLE
    phase: str = "idle"
    done: int = 0
    total: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: tuple[tuple[str, int], ...] = ()
    eta_s: float | None = None
    elapsed_s: float = 0.0
    timings_s: tuple[tuple[str, float], ...] = ()
    reason: FinishReason | None = None
    """How a finished run ended (completed, cancelled, failed); None before."""
    message: str = ""
    new_pairs: int = 0
    """Pairs stored by this run (the others were already in a resumed file)."""
    measured_offset: tuple[float, float, float, float] | None = None
    """(dx_um, dy_um, dz_um, rotation_deg) HR minus LR, measured on the first HR tile."""
    output: str = ""

    @property
    def timings(self) -> dict[str, float]:
        """Seconds spent per phase (move, focus, snap, register, write, swap)."""
        return dict(self.timings_s)

    @property
    def cancelled(self) -> bool:
        """The operator stopped the run (stored pairs are kept)."""
        return self.reason == FinishReason.CANCELLED

    @property
    def failed(self) -> bool:
        """The run ended on an error (the message says which)."""
        return self.reason == FinishReason.FAILED


@dataclass(frozen=True)
class AcquisitionEvent:
    """Base of the typed events; ``kind`` names the class for logs and simple filters.

    Each event carries exactly its fields: reading one it does not have is an
    AttributeError (and tests/test_jobs_events.py checks consumers statically)."""

    status: AcquisitionStatus
    kind: ClassVar[str] = "event"


@dataclass(frozen=True)
class Started(AcquisitionEvent):
    """The store is open and the first tile comes next."""

    output: str
    kind: ClassVar[str] = "started"


@dataclass(frozen=True)
class TileDone(AcquisitionEvent):
    """One tile imaged: an LR tile stored, or an HR tile's pair stored or rejected."""

    phase: str
    """"lr" or "hr"."""
    tile: int
    ix: int
    iy: int
    z_um: float | None = None
    focus_evaluations: int | None = None
    tissue_fraction: float | None = None
    kind: ClassVar[str] = "tile_done"


@dataclass(frozen=True)
class PairStored(AcquisitionEvent):
    """A pair was written and accepted by the quality gates."""

    pair_id: int
    tile: int
    reason: str
    correlation: float
    focus_score: float
    """Focus metric of the HR frame (the LR frame's is ``lr_focus_score``)."""
    lr_focus_score: float
    stage_xy_um: tuple[float, float]
    kind: ClassVar[str] = "pair_stored"


@dataclass(frozen=True)
class PairRejected(PairStored):
    """A pair was written but a quality gate refused it (``reason`` says which)."""

    kind: ClassVar[str] = "pair_rejected"


@dataclass(frozen=True)
class Finished(AcquisitionEvent):
    """The run ended completed or cancelled (``status.reason``)."""

    kind: ClassVar[str] = "finished"


@dataclass(frozen=True)
class Failed(AcquisitionEvent):
    """The run ended on an error; stored pairs are kept."""

    error: str
    kind: ClassVar[str] = "failed"


def _software_versions() -> dict[str, str]:
    import h5py
    import scipy

    out = {"numpy": np.__version__, "scipy": scipy.__version__, "h5py": h5py.__version__,
           "hdf5": h5py.version.hdf5_version}
    try:
        from importlib.metadata import version

        out["thinkscope"] = version("thinkscope")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        out["thinkscope"] = "0.1.0"
    return out


class AcquisitionEngine:
    """Runs an AcquisitionPlan on a microscope, inline (run), in a thread (start) or as a
    job of :class:`thinkscope_gui.jobs.JobRunner` (it holds the stand's lease there)."""

    name = "acquisition"
    needs_stand = True

    def __init__(self, plan: AcquisitionPlan | None = None, scope: Microscope | None = None,
                 on_event: Callable[[AcquisitionEvent], None] | None = None, *,
                 resume: bool = False, append: bool = False) -> None:
        self.plan = plan
        self.scope = scope
        self.on_event = on_event
        self.resume_run = resume
        self.append_run = append
        self.control = JobControl(self.name, can_pause=True, needs_stand=True)
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        #: set when run() has reported its end; why an Event: on Python 3.11 a
        #: KeyboardInterrupt inside Thread.join() marks a running thread as stopped
        self.ended = threading.Event()
        self._timings: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._reasons: Counter[str] = Counter()
        self._accepted = self._rejected = 0
        self._new_pairs = 0
        self._offset: tuple[float, float, float, float] | None = None

    # --- control -----------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        """Current run state."""
        return self.control.state

    def start(self) -> threading.Thread:
        """Run in a background thread; returns it (join it or use wait())."""
        self.ended.clear()
        self._thread = threading.Thread(target=self.run, name="acquisition", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> AcquisitionStatus:
        """Block until a background run (start() or a JobRunner) ends; the final status."""
        if self._thread is not None or self.control.state != RunState.IDLE:
            self.ended.wait(timeout)
        return self.status()

    def pause(self) -> bool:
        """Hold before the next tile (the current one completes)."""
        return self.control.pause()

    def resume(self) -> None:
        """Continue after pause()."""
        self.control.resume()

    def cancel(self) -> None:
        """Stop at the next step, autofocus included; stored pairs stay (resume later)."""
        self.control.cancel()

    def job_status(self) -> JobStatus:
        """The runner's generic snapshot (progress, ETA, state, reason)."""
        return self.control.snapshot()

    def status(self) -> AcquisitionStatus:
        """A frozen snapshot of the run."""
        with self._lock:
            js = self.control.snapshot()
            return AcquisitionStatus(
                state=js.state, phase=js.phase or "idle", done=js.done, total=js.total,
                accepted=self._accepted, rejected=self._rejected,
                reasons=tuple(sorted(self._reasons.items())), eta_s=js.eta_s,
                elapsed_s=js.elapsed_s, timings_s=tuple(self._timings.items()),
                reason=js.reason, new_pairs=self._new_pairs, message=js.message,
                measured_offset=self._offset, output=self.plan.output if self.plan else "")

    # --- internals ---------------------------------------------------------------------
    def _emit(self, event_type: type[AcquisitionEvent], **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(event_type(self.status(), **fields))

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self._timings[name] += time.perf_counter() - t

    def _checkpoint(self) -> None:
        self.control.checkpoint()

    def _phase(self, phase: str) -> None:
        self.control.progress(phase=phase)

    def _focus(self, settings: AutofocusSettings, x: float, y: float, fmap: FocusMap,
               z_seed: float | None, full: bool) -> AutofocusResult:
        scope = self._scope()
        if not settings.enabled:
            z = z_seed if z_seed is not None else scope.z()
            scope.set_z(z)
            return AutofocusResult(float(z), float("nan"), 0, True)
        rng = None if full else settings.seeded_range_um + 3.0 * fmap.residual_um()
        res = autofocus(scope, settings, z_seed, half_range_um=rng,
                        cancel=lambda: self.control.cancel_requested)
        if not res.interior and not full and z_seed is not None:
            # a featureless field has no sharpness peak: trust the measured focus surface
            scope.set_z(z_seed)
            return AutofocusResult(float(z_seed), res.score, res.evaluations, True, res.curve,
                                   from_prediction=True)
        return res

    def _scope(self) -> Microscope:
        assert self.scope is not None
        return self.scope

    # --- the run -----------------------------------------------------------------------
    def run(self, plan: AcquisitionPlan | None = None, scope: Microscope | None = None,
            on_event: Callable[[AcquisitionEvent], None] | None = None) -> AcquisitionStatus:
        """Carry out the plan inline; returns the final status (never raises for run
        failures: the reason is FAILED with a message and a Failed event is sent; a
        cancel at any step, autofocus included, ends CANCELLED)."""
        self.plan = plan or self.plan
        self.scope = scope or self.scope
        self.on_event = on_event or self.on_event
        if self.plan is None or self.scope is None:
            raise ValueError("AcquisitionEngine needs a plan and a scope")
        try:
            return self._run()
        finally:
            self.ended.set()

    def _run(self) -> AcquisitionStatus:
        assert self.plan is not None
        ctl = self.control
        ctl.begin()
        writer: PairWriter | None = None
        reraise: BaseException | None = None
        end: tuple[FinishReason, str] | None = None
        try:
            writer = self._prepare()
            self._emit(Started, output=str(writer.path))
            self._acquire(writer)
            ctl.progress(phase="done")
            end = (FinishReason.COMPLETED, "finished")
        except Cancelled:
            end = (FinishReason.CANCELLED, self._cancel_message())
        except (PlanError, StoreError) as exc:
            end = self._failure(str(exc))
        except Exception as exc:  # noqa: BLE001 - any device error ends the run cleanly
            end = self._failure(f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # KeyboardInterrupt in an inline run: still report
            end = (FinishReason.FAILED, f"{type(exc).__name__}: {exc}")
            reraise = exc
        finally:
            if writer is not None:
                try:
                    writer.close()
                except Exception as exc:  # noqa: BLE001 - the end is reported regardless
                    _log.warning("closing the store failed: %s", exc)
            ctl.finish(*(end or (FinishReason.FAILED, "interrupted")))
        if ctl.reason == FinishReason.FAILED:
            _log.error("acquisition into %s failed: %s", self.plan.output, ctl.snapshot().message)
            self._emit(Failed, error=ctl.snapshot().message)
        else:
            self._emit(Finished)
        if reraise is not None:
            raise reraise
        return self.status()

    def _cancel_message(self) -> str:
        return (f"cancelled; {self._new_pairs} pair(s) stored by this run are kept - "
                "resume to continue")

    def _failure(self, message: str) -> tuple[FinishReason, str]:
        """An error after cancel() is the cancel landing mid-step (a device interrupted
        while moving): the operator asked to stop, so the run ends cancelled."""
        if self.control.cancel_requested:
            _log.info("error after cancel, counted as cancelled: %s", message)
            return FinishReason.CANCELLED, self._cancel_message()
        return FinishReason.FAILED, message

    def _prepare(self) -> PairWriter:
        plan, scope = self.plan, self._scope()
        assert plan is not None
        plan.validate_against(scope)
        self._lr = scope.profile(plan.lr_objective)
        self._hr = scope.profile(plan.hr_objective)
        self._scale = self._lr.pixel_size_um / self._hr.pixel_size_um
        h, w = scope.image_shape()
        self._hr_field = (w * self._hr.pixel_size_um, h * self._hr.pixel_size_um)
        self._tiles: list[Tile] = plan.tiles(self._hr_field)
        patch = choose_patch_px(self._hr_field, self._lr.pixel_size_um, self._scale,
                                plan.patch_lr_px)
        if patch is None:
            raise PlanError("no LR patch size fits the HR field")
        self._patch = patch
        bit_depth = int(scope.bit_depth())
        self._bit_depth = bit_depth
        dtype = "uint8" if bit_depth <= 8 else "uint16"
        profiles = {k: json.loads(p.model_dump_json()) for k, p in scope.profiles.items()}
        camera = {"bit_depth": bit_depth, "image_shape": [h, w, 3],
                  "lr_exposure_ms": plan.lr_exposure_ms, "hr_exposure_ms": plan.hr_exposure_ms}
        header = StoreHeader(
            lr_profile_json=self._lr.model_dump_json(), hr_profile_json=self._hr.model_dump_json(),
            scale=self._scale, lr_frame_shape=(h, w, 3), hr_frame_shape=(h, w, 3),
            patch_lr_px=patch, dtype=dtype, bit_depth=bit_depth, plan_json=plan.to_json(),
            profiles_json=json.dumps(profiles), camera_json=json.dumps(camera),
            software_json=json.dumps(_software_versions()),
            source=str(getattr(scope, "source", "")))
        writer = PairWriter.open(plan.output, header, resume=self.resume_run,
                                 append=self.append_run)
        if writer.tile_offset:  # an appended plan: its tiles follow the stored ones
            k = writer.tile_offset
            self._tiles = [dataclasses.replace(t, index=t.index + k) for t in self._tiles]
        self.control.progress(total=2 * len(self._tiles))
        return writer

    def _acquire(self, writer: PairWriter) -> None:
        plan, scope = self.plan, self._scope()
        assert plan is not None
        stored = writer.stored_tiles()
        paired = writer.stored_pair_tiles()
        # account for work already in the file (resume)
        done = sum(1 for t in self._tiles if t.index in stored or t.index in paired)
        self.control.progress(done + len(paired), counted=0)
        self._count_existing(writer)
        fmap = FocusMap(min_points_for_plane=plan.autofocus.min_seed_tiles)
        for row in stored.values():
            _, m = writer.lr_tile(row)
            fmap.add(m["stage_xy_um"][0], m["stage_xy_um"][1], m["z_um"])

        todo_lr = [t for t in self._tiles if t.index not in stored and t.index not in paired]
        if todo_lr:
            self._phase("lr")
            with self._timed("swap"):
                if scope.objective() != plan.lr_objective:
                    scope.set_objective(plan.lr_objective)
                scope.set_exposure(plan.lr_exposure_ms)
            for t in todo_lr:
                self._checkpoint()
                self._lr_tile(writer, t, fmap)
                stored = writer.stored_tiles()
        todo_hr = [t for t in self._tiles if t.index not in paired]
        if not todo_hr:
            return
        self._phase("swap")
        self._checkpoint()
        with self._timed("swap"):
            scope.set_objective(plan.hr_objective)  # the facade retracts Z first
            scope.set_exposure(plan.hr_exposure_ms)
        self._phase("hr")
        measured = writer.get_attr("measured_offset_json")
        if measured:
            m = json.loads(measured)
            self._offset = (m["dx_um"], m["dy_um"], m["dz_um"], m["rotation_deg"])
        if self._offset is None:
            todo_hr = self._calibration_first(writer, todo_hr, stored)
        for t in todo_hr:
            self._checkpoint()
            self._hr_tile(writer, t, stored[t.index])

    def _calibration_first(self, writer: PairWriter, todo: list[Tile],
                           stored: dict[int, int]) -> list[Tile]:
        """Visit the most textured tissue tile first: it measures the inter-objective
        offset and rotation for all others, and texture makes that measurement reliable."""
        f = writer._f  # noqa: SLF001 - same package
        n = writer.committed_tiles
        score = f["lr_tiles/focus_score"][:n]
        tissue = f["lr_tiles/tissue_fraction"][:n]

        def key(t: Tile) -> float:
            row = stored[t.index]
            return float(score[row]) if tissue[row] >= MIN_TISSUE_FRACTION else -1.0

        best = max(todo, key=key)
        return [best] + [t for t in todo if t is not best]

    def _count_existing(self, writer: PairWriter) -> None:
        n = writer.committed_pairs
        if not n:
            return
        f = writer._f  # noqa: SLF001 - same module family
        acc = np.asarray(f["pairs/accepted"][:n], dtype=bool)
        reasons = f["pairs/reason"][:n]
        with self._lock:
            self._accepted = int(acc.sum())
            self._rejected = int((~acc).sum())
            for a, r in zip(acc, reasons, strict=True):
                if not a:
                    self._reasons[r.decode() if isinstance(r, bytes) else str(r)] += 1

    def _lr_tile(self, writer: PairWriter, t: Tile, fmap: FocusMap) -> None:
        plan, scope = self.plan, self._scope()
        assert plan is not None
        with self._timed("move"):
            scope.set_xy(t.x, t.y)
        seed = fmap.predict(t.x, t.y)
        with self._timed("focus"):
            af = self._focus(plan.autofocus, t.x, t.y, fmap, seed, full=seed is None)
        with self._timed("snap"):
            frame = scope.snap()
        score = focus_metric(frame, plan.autofocus.metric, plan.autofocus.roi_fraction)
        if af.interior and not af.from_prediction:
            fmap.add(t.x, t.y, af.z)
        tf = tissue_fraction(frame)
        with self._timed("write"):
            writer.append_tile(LRTileRecord(
                tile_index=t.index, ix=t.ix, iy=t.iy, stage_xy_um=(t.x, t.y), z_um=af.z,
                focus_score=score, tissue_fraction=tf, frame=frame,
                extra={"focus_interior": af.interior, "focus_evaluations": af.evaluations,
                       "focus_from_prediction": af.from_prediction,
                       "objective": plan.lr_objective}))
        self.control.advance()
        self._emit(TileDone, phase="lr", tile=t.index, ix=t.ix, iy=t.iy, z_um=af.z,
                   focus_evaluations=af.evaluations, tissue_fraction=tf)

    def _hr_tile(self, writer: PairWriter, t: Tile, lr_row: int) -> None:
        plan, scope = self.plan, self._scope()
        assert plan is not None
        lr_frame, lr_meta = writer.lr_tile(lr_row)
        lx, ly = lr_meta["stage_xy_um"]
        lz = float(lr_meta["z_um"])
        tissue = float(lr_meta["tissue_fraction"]) >= MIN_TISSUE_FRACTION
        base: dict[str, Any] = dict(tile_index=t.index, lr_tile=lr_row, ix=t.ix, iy=t.iy,
                                    stage_xy_um=(lx, ly))
        if plan.skip_empty and not tissue:
            blank_lr = np.zeros((self._patch, self._patch, 3), lr_frame.dtype)
            q = round(self._patch * self._scale)
            self._store(writer, PairRecord(
                **base, hr_stage_xy_um=(math.nan, math.nan), z_um=(lz, math.nan),
                focus_score=(float(lr_meta["focus_score"]), math.nan),
                transform=(math.nan, math.nan, math.nan), correlation=math.nan,
                crop_origin=(-1, -1), accepted=False, reason="no tissue", tissue=False,
                lr_patch=blank_lr, hr_patch=np.zeros((q, q, 3), lr_frame.dtype),
                hr_frame=np.zeros_like(lr_frame), extra={"skipped": True}))
            return
        lr_p, hr_p = self._lr, self._hr
        if self._offset is None:
            ox = lr_p.offset_xy_um[0] - hr_p.offset_xy_um[0]
            oy = lr_p.offset_xy_um[1] - hr_p.offset_xy_um[1]
            oz = hr_p.parfocal_z_um - lr_p.parfocal_z_um
            rot = hr_p.rotation_deg - lr_p.rotation_deg
            first = True
        else:
            ox, oy, oz, rot = self._offset
            first = False
            if not plan.estimate_rotation:
                rot = hr_p.rotation_deg - lr_p.rotation_deg
        hx, hy = lx + ox, ly + oy
        with self._timed("move"):
            scope.set_xy(hx, hy)
        with self._timed("focus"):
            af = self._focus(plan.autofocus, hx, hy, FocusMap(), lz + oz, full=first)
        with self._timed("snap"):
            hr_frame = scope.snap()
        hr_score = focus_metric(hr_frame, plan.autofocus.metric, plan.autofocus.roi_fraction)
        reg: Registration | None = None
        reasons: list[str] = []
        lr_patch = hr_patch = None
        crop = (-1, -1)
        with self._timed("register"):
            try:
                # the rotation is measured once (calibration tile), then held: it belongs
                # to the objective pair, and low-texture fields cannot pin it down
                reg = register(lr_frame, hr_frame, self._scale, rot,
                               estimate_rotation=plan.estimate_rotation and first)
                lr_patch, hr_patch, crop = cut_patches(lr_frame, hr_frame, reg, self._scale,
                                                       self._patch)
            except RegistrationError as exc:
                reasons.append(f"registration failed: {exc}")
        g = plan.gates
        lp = self._lr.pixel_size_um
        if reg is not None:
            if reg.correlation < g.min_correlation:
                reasons.append(f"low correlation ({reg.correlation:.2f} < {g.min_correlation})")
            if math.hypot(reg.dx_lr, reg.dy_lr) * lp > g.max_offset_um:
                reasons.append("HR field too far from the LR centre")
        if not af.interior or not lr_meta.get("focus_interior", True):
            reasons.append("focus not found")
        elif min(hr_score, float(lr_meta["focus_score"])) < g.min_focus:
            reasons.append("low focus score")
        sat = max(saturated_fraction(lr_frame, self._bit_depth),
                  saturated_fraction(hr_frame, self._bit_depth))
        if sat > g.max_saturated_fraction:
            reasons.append(f"saturated ({100 * sat:.1f}% of pixels)")
        if first and reg is not None and reg.correlation >= g.min_correlation:
            # the real inter-objective offset: move so the HR centre sees the LR centre
            self._offset = (ox - reg.dx_lr * lp, oy - reg.dy_lr * lp, af.z - lz,
                            reg.rotation_deg)
            writer.set_attr("measured_offset_json", json.dumps({
                "dx_um": self._offset[0], "dy_um": self._offset[1], "dz_um": self._offset[2],
                "rotation_deg": self._offset[3], "from_tile": t.index,
                "lr_objective": plan.lr_objective, "hr_objective": plan.hr_objective}))
        if lr_patch is None or hr_patch is None:
            q = round(self._patch * self._scale)
            lr_patch = np.zeros((self._patch, self._patch, 3), lr_frame.dtype)
            hr_patch = np.zeros((q, q, 3), lr_frame.dtype)
        transform = ((reg.dx_lr, reg.dy_lr, reg.rotation_deg) if reg is not None
                     else (math.nan, math.nan, math.nan))
        self._store(writer, PairRecord(
            **base, hr_stage_xy_um=(hx, hy), z_um=(lz, af.z),
            focus_score=(float(lr_meta["focus_score"]), hr_score), transform=transform,
            correlation=reg.correlation if reg is not None else math.nan, crop_origin=crop,
            accepted=not reasons, reason="; ".join(reasons), tissue=tissue,
            lr_patch=lr_patch, hr_patch=hr_patch, hr_frame=hr_frame,
            extra={"saturated_fraction": sat, "hr_focus_evaluations": af.evaluations,
                   "hr_focus_from_prediction": af.from_prediction,
                   "scale": self._scale, "patch_lr_px": self._patch,
                   "hr_objective": plan.hr_objective, "lr_objective": plan.lr_objective}))

    def _store(self, writer: PairWriter, rec: PairRecord) -> None:
        with self._timed("write"):
            pid = writer.append_pair(rec)
        self.control.advance()
        with self._lock:
            self._new_pairs += 1
            if rec.accepted:
                self._accepted += 1
            else:
                self._rejected += 1
                self._reasons[rec.reason] += 1
        self._emit(TileDone, phase="hr", tile=rec.tile_index, ix=rec.ix, iy=rec.iy,
                   z_um=rec.z_um[1])
        self._emit(PairStored if rec.accepted else PairRejected, pair_id=pid,
                   tile=rec.tile_index, reason=rec.reason, correlation=rec.correlation,
                   focus_score=rec.focus_score[1],
                   lr_focus_score=rec.focus_score[0], stage_xy_um=rec.stage_xy_um)
