"""Rebuild the shipped default models from the committed code (issue 8 §7, issue 11).

One recipe, recorded in full in each model file: render registered 40x/100x pairs of the
training tissues on every simulated stand (the simulator is deterministic, so the recipe
*is* the data), train the fast network with exposure and orientations only (``augment``
"off" in ``arch_overrides``: the mild recipe's camera degradations cost the ideal stand
and the bar target) and the quality one with those plus an amplitude-spectrum loss term
(``arch_overrides``: the bar target) under a time budget
(annealed at the end), then score each on
held-out tissue with learn.evaluate. The metadata gets the git commit, the data recipe
and those metrics.

Acceptance rule (``better``): a rebuilt model replaces an existing file (or with
force=True) when, on the held-out evaluation (worst exposure per stand):

1. its worst stand is better than the existing model's worst stand (the default models
   serve both stands, so the stand they serve worst is what a rebuild must improve);
2. no stand loses more than 0.1 dB unless it stays at or above the issue-11 floor
   (``FLOOR_DB``: fast +2 dB, quality +3 dB over bicubic): a stand may give up a margin it
   has above the target, never the target itself;
3. the bar target is not flattened: on every bar group just inside the 40x cutoff the
   contrast it recovers is at least 1.3x bicubic's or at least the existing model's
   (denoising recipes trade exactly this for PSNR);
4. it does not fall below bicubic on its robustness set (learn.robustness: validation tiles
   brightened, stain-shifted, JPEG-compressed, noisier; the report's ``robustness``): a
   recipe that boosts fine periods harder also boosts noise and JPEG blocks.

Why not "better on the realistic stand and no worse anywhere": with a fast network of 16
channels a both-stand model pays on the ideal stand for what it learns on the realistic
one, so that rule refused every both-stand rebuild (last session: shipped fast +2.92/+1.28
dB ideal/realistic against +2.61/+1.94 for a both-stand fine-tune) and left the models
that serve the realistic stand worst in place.

``init`` ("shipped", a model file, or "none") starts each model from an existing one of the
same architecture (transfer learning: the shipped models already know the ideal stand; a
fine-tune adds the realistic stand and the robust augmentation without forgetting it). The
init model's name and SHA-256 are recorded in the new file's metadata (``init_model``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .meta import ModelMeta
from .modelfile import DEFAULT_MODELS, load_model, save_model

__all__ = ["FLOOR_DB", "RebuildRecipe", "better", "code_version", "rebuild_models", "rejections",
           "resolve_init"]

ROOT = Path(__file__).resolve().parents[2]

#: issue 11's held-out gain over bicubic (dB, clean 100x reference) per architecture
FLOOR_DB: dict[str, float] = {"fast": 2.0, "quality": 3.0}
#: a bar group counts as not flattened at this multiple of bicubic's recovered contrast
BAR_FACTOR = 1.3


@dataclass(frozen=True)
class RebuildRecipe:
    """Data and training of the default models (the defaults are the shipped recipe)."""

    stands: tuple[str, ...] = ()          #: () = every simulated stand of this build
    tissues: tuple[str, ...] = ("epithelium", "lymphoid")  #: stroma stays held out
    pairs_per_stand: int = 48
    #: per-stand overrides of pairs_per_stand; the ideal stand's weight keeps what the
    #: ideal 40x passes near its cutoff (measured, fast, 8 min: 48/48 pairs +2.29/+1.69 dB
    #: ideal/realistic and 0.36 µm bars 0.14 of 100x; 72/24 +2.75/+1.55 dB and 0.16)
    stand_pairs: dict[str, int] = field(
        default_factory=lambda: {"ideal": 72, "realistic": 24})
    tile: int = 128
    seed: int = 11
    minutes: dict[str, float] = field(default_factory=lambda: {"fast": 22.0, "quality": 24.0})
    epochs: int = 20                       #: only when minutes is empty (tests)
    steps_per_epoch: int = 200
    batch_size: int = 16
    patch: int = 48
    lr: float = 3e-3
    loss: str = "mse"
    fft_weight: float = 0.0                #: TrainConfig.fft_weight (amplitude-spectrum L1)
    eval_n: int = 6
    eval_tile: int = 96
    eval_gains: tuple[float, ...] = (0.9, 1.0, 1.1)
    eval_rl_iterations: tuple[int, ...] = (2, 5, 10, 20)
    threads: int = 2
    device: str = "cpu"                    #: torch device of the training ("cuda": a GPU)
    init: str = "none"                     #: "shipped", a model file, or "none" (scratch)
    init_lr: float = 3e-4                  #: peak learning rate of a fine-tune (init set)
    augment: str = "mild"                  #: TrainConfig.augment ("off": ablations only)
    #: per-architecture overrides of the fields above: the quality model keeps the bar
    #: target only without the camera degradations, with the amplitude-spectrum term and
    #: the ideal stand weighted 7:1 (measured, 25 min each: mild 72/24 flattens the 0.36 µm
    #: bars to 0.09; off + fft 0.1, 72/24: 0.15, ideal +3.23 dB; 84/12: 0.18, +3.62 dB).
    #: Longer budgets buy the realistic stand but flatten the 0.36 µm v bars below bicubic
    #: (off + fft 0.1: 45 min 72/36 +3.11/+2.86 dB ideal/realistic, bars 0.11; 38 min 96/24
    #: +3.26/+2.80 dB, bars 0.12), so the rule refuses them (README "Rebuilds").
    arch_overrides: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        #: fast: exposure + orientations only, a third of the pairs from the line targets,
        #: 60/48 pairs, 22 min (measured, fine-tunes at lr 3e-4: the shipped one, from the
        #: previous one, +3.41/+2.19 dB and 0.36 µm bars 0.22-0.23; that previous one, tissue
        #: only, 60/36, from the first session's model: +2.91/+1.85 dB, bars 0.16; lr 1e-3:
        #: +1.96 but bars 0.07; fft 0.1 costs both stands; README "Models")
        "fast": {"augment": "off", "stand_pairs": {"ideal": 60, "realistic": 48},
                 "tissues": ("epithelium", "lymphoid", "line_targets")},
        #: quality: a third of the pairs from the line targets, 72/48 pairs, the spectrum
        #: term, LR noise on half the patches ("noisy"), 24 min (measured, fine-tunes at lr
        #: 3e-4: the shipped one, from q5 (34 min "off" from q4), +4.76/+3.71 dB, bars
        #: 0.70/0.55 at 0.36 µm and 1.00/0.91 at 0.40 µm, robustness minimum +2.0 dB (JPEG),
        #: noise case +5.0; q5 itself had bars 0.75/0.70 but the noise case at -0.38 dB,
        #: below bicubic: every "off" step with line targets boosts noise with the bars)
        "quality": {"augment": "noisy", "fft_weight": 0.1,
                    "stand_pairs": {"ideal": 72, "realistic": 48},
                    "tissues": ("epithelium", "lymphoid", "line_targets")}})

    @classmethod
    def tiny(cls) -> RebuildRecipe:
        """Seconds, not hours: for tests of the command itself."""
        return cls(pairs_per_stand=4, stand_pairs={}, arch_overrides={}, tile=64, minutes={},
                   epochs=1, steps_per_epoch=4, batch_size=4, patch=32, eval_n=1,
                   eval_tile=48, eval_gains=(1.0,), eval_rl_iterations=(2,), threads=1)

    def resolved(self) -> RebuildRecipe:
        from .sim_source import STANDS

        return replace(self, stands=tuple(self.stands) or STANDS)

    def for_arch(self, arch: str) -> RebuildRecipe:
        """The recipe one architecture is trained with (its overrides applied)."""
        return replace(self, **self.arch_overrides.get(arch, {}))

    def without_override(self, *keys: str) -> RebuildRecipe:
        """The recipe with these fields no longer overridden per architecture (a command
        line option set them for every model)."""
        return replace(self, arch_overrides={a: {k: v for k, v in o.items() if k not in keys}
                                             for a, o in self.arch_overrides.items()})


def code_version() -> str:
    """`git describe`-like commit of the checkout (with "-dirty" when it has changes), or
    the app version outside a git checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from .meta import app_version

        return f"thinkscope {app_version()} (no git)"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_init(init: str, arch: str) -> Path | None:
    """The model file a rebuild of ``arch`` starts from: None for "none"/"", the shipped
    default of that arch for "shipped", else the given file (it must exist)."""
    if init in ("", "none"):
        return None
    path = DEFAULT_MODELS[arch] if init == "shipped" else Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"init model {path} does not exist")
    return path


def _sources(recipe: RebuildRecipe) -> list[Any]:
    from .sim_source import SimPairSource

    return [SimPairSource(recipe.stand_pairs.get(stand, recipe.pairs_per_stand),
                          tissues=list(recipe.tissues), tile=recipe.tile,
                          seed=recipe.seed + 1000 * i, stand=stand)
            for i, stand in enumerate(recipe.stands)]


def _score(report: dict[str, Any]) -> float:
    """One number to compare rebuilds: the worst held-out gain over bicubic (clean 100x
    reference) over stands and exposures."""
    return min(_per_stand(report).values())


def _per_stand(report: dict[str, Any]) -> dict[str, float]:
    """Worst held-out gain over bicubic per stand (over exposures)."""
    return {stand: min(m["gain_db_clean"] for m in per.values())
            for stand, per in report["stands"].items()}


def rejections(new: dict[str, Any], old: dict[str, Any], tol_db: float = 0.1,
               floor_db: float | None = None) -> list[str]:
    """Why the rebuild ``new`` does not replace ``old`` under THE acceptance rule (see the
    module docstring); empty when it does. floor_db defaults to FLOOR_DB of new's arch."""
    a, b = _per_stand(new), _per_stand(old)
    common = [k for k in a if k in b] or list(a)
    if floor_db is None:
        floor_db = FLOOR_DB.get(str(new.get("arch", "")), float("inf"))
    why = []
    worst_new, worst_old = min(a[k] for k in common), min(b[k] for k in common)
    if not worst_new > worst_old:
        why.append(f"worst stand {worst_new:+.2f} dB, not above the existing {worst_old:+.2f}")
    why += [f"{k} {a[k]:+.2f} dB: below the existing {b[k]:+.2f} and the {floor_db:+g} dB floor"
            for k in common if a[k] < b[k] - tol_db and a[k] < floor_db]
    robust = new.get("robustness") or {}
    if robust.get("robust_below_bicubic"):
        worst = min((k for k in robust if k.startswith("robust_gain_db_")),
                    key=lambda k: robust[k], default="")
        why.append("below bicubic on the robustness set"
                   + (f" ({worst.removeprefix('robust_gain_db_')} {robust[worst]:+.2f} dB)"
                      if worst else ""))
    old_bars = {(r["period_um"], r["orientation"]): r["recovered_model"]
                for r in old.get("bars", [])}
    for r in new.get("bars", []):
        was = old_bars.get((r["period_um"], r["orientation"]), float("inf"))
        if r["recovered_model"] < min(BAR_FACTOR * r["recovered_bicubic"], was):
            why.append(f"bars {r['period_um']:.2f} µm {r['orientation']} flattened: "
                       f"{r['recovered_model']:.2f} of 100x (bicubic "
                       f"{r['recovered_bicubic']:.2f}, existing {was:.2f})")
    return why


def better(new: dict[str, Any], old: dict[str, Any], tol_db: float = 0.1,
           floor_db: float | None = None) -> bool:
    """THE acceptance rule of a rebuild: the worst stand improves, no stand drops more than
    tol_db below the existing model unless it stays at or above the issue-11 floor, and no
    bar group is flattened (see the module docstring and ``rejections``)."""
    return not rejections(new, old, tol_db, floor_db)


def _evaluate(path: Path, recipe: RebuildRecipe) -> dict[str, Any]:
    from .evaluate import evaluate_model
    from .infer import Enhancer

    return evaluate_model(Enhancer.load(path, device="cpu"), n=recipe.eval_n,
                          tile=recipe.eval_tile, stands=recipe.stands, gains=recipe.eval_gains,
                          rl_iterations=recipe.eval_rl_iterations)


def rebuild_models(out_dir: str | Path, recipe: RebuildRecipe | None = None,
                   archs: tuple[str, ...] = ("fast", "quality"), force: bool = False,
                   command: str = "main.py rebuild-models",
                   log: Callable[[str], None] = print,
                   cancel: Callable[[], bool] | None = None,
                   keep_rejected: bool = False) -> dict[str, Any]:
    """Train and evaluate each default model; returns {arch: {path, kept, score, old_score,
    report}}. Files are written as OUT_DIR/default_ARCH.safetensors; a rebuild that is not
    better is deleted, or with keep_rejected kept as OUT_DIR/default_ARCH.rejected.safetensors
    (to inspect it)."""
    from .train import TrainConfig, Trainer

    recipe = (recipe or RebuildRecipe()).resolved()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = code_version()
    results: dict[str, Any] = {}
    base = recipe
    for arch in archs:
        if cancel and cancel():
            break
        recipe = base.for_arch(arch)
        data_recipe = {k: v for k, v in asdict(recipe).items()
                       if k in ("stands", "tissues", "pairs_per_stand", "stand_pairs", "tile",
                                "seed")}
        data_recipe["source"] = "SimPairSource (registered renders, learn/sim_source.py)"
        final = out_dir / DEFAULT_MODELS[arch].name
        tmp = out_dir / f".rebuild_{arch}.safetensors"
        sources = _sources(recipe)
        minutes = recipe.minutes.get(arch)
        init = resolve_init(recipe.init, arch)
        init_info: dict[str, Any] | None = None
        warm: str | None = None
        if init is not None:  # a private copy: the run may replace the file it started from
            warm = str(out_dir / f".init_{arch}.safetensors")
            shutil.copyfile(init, warm)
            init_info = {"name": init.name, "path": str(init), "sha256": file_sha256(warm),
                         "code_version": load_model(warm)[1].model_dump().get("code_version")}
        cfg = TrainConfig(arch=arch, epochs=recipe.epochs, minutes=minutes,
                          steps_per_epoch=recipe.steps_per_epoch, batch_size=recipe.batch_size,
                          patch=recipe.patch, lr=recipe.init_lr if warm else recipe.lr,
                          loss=recipe.loss, fft_weight=recipe.fft_weight, warm_start=warm,
                          augment=recipe.augment, threads=recipe.threads, seed=recipe.seed,
                          device=recipe.device, out=str(tmp),
                          checkpoint=str(tmp) + ".ckpt", command=f"{command} ({arch})")
        budget = f"{minutes:g} min" if minutes else f"{recipe.epochs} epochs"
        start = f" from {init} (sha256 {init_info['sha256'][:12]})" if init_info else ""
        log(f"{arch}: training on {', '.join(s.name for s in sources)} for {budget}{start}")
        logged = [0]   # the last epoch logged

        def progress(st: Any, arch: str = arch, logged: list[int] = logged) -> None:
            if st.history and st.history[-1]["epoch"] != logged[0]:
                h = st.history[-1]
                logged[0] = int(h["epoch"])
                log(f"{arch}: epoch {logged[0]} val gain {h.get('gain_db', float('nan')):+.2f}"
                    f" dB, robust min {h.get('robust_min_gain_db', float('nan')):+.2f} dB, "
                    f"lr {st.lr:.2e}")

        status = Trainer(cfg, sources=sources).run_polled(cancel, progress, poll_s=1.0)
        if warm:
            Path(warm).unlink(missing_ok=True)
        if cfg.checkpoint:
            Path(cfg.checkpoint).unlink(missing_ok=True)
        if status.state not in ("done", "stopped_early") or not tmp.is_file():
            log(f"{arch}: training ended {status.state}: {status.message}")
            tmp.unlink(missing_ok=True)
            results[arch] = {"state": status.state, "kept": False}
            continue
        log(f"{arch}: trained ({status.state}); evaluating on held-out tissue")
        report = {**_evaluate(tmp, recipe), "model": final.name}  # not the temp name
        model, meta = load_model(tmp)
        report["robustness"] = {k: v for k, v in meta.metrics.items()
                                if k.startswith(("robust", "heldout", "otherstand"))}
        meta = ModelMeta(**{**meta.model_dump(), "code_version": version,
                            "data_recipe": data_recipe, "rebuild_recipe": asdict(recipe),
                            "init_model": init_info, "evaluation": report})
        save_model(model, meta, tmp)
        score = _score(report)
        old = None
        old_report: dict[str, Any] | None = None
        if final.is_file():
            try:
                old_report = _evaluate(final, recipe)
                old = _score(old_report)
            except Exception as e:  # noqa: BLE001 - an unreadable old model is replaced
                log(f"{arch}: the existing {final} could not be scored ({e}); replacing it")
        why = rejections(report, old_report) if old_report is not None else []
        keep = force or not why
        stands = ", ".join(f"{k} {v:+.2f}" for k, v in _per_stand(report).items())
        log(f"{arch}: rebuilt model, worst held-out gain per stand: {stands} dB")
        if old_report is not None:
            was = ", ".join(f"{k} {v:+.2f}" for k, v in _per_stand(old_report).items())
            log(f"{arch}: existing model, worst held-out gain per stand: {was} dB")
        if keep:
            tmp.replace(final)
            log(f"{arch}: wrote {final} (worst held-out gain {score:+.2f} dB"
                + (f", was {old:+.2f} dB)" if old is not None else ")"))
        else:
            if keep_rejected:
                tmp.replace(out_dir / f"default_{arch}.rejected.safetensors")
            tmp.unlink(missing_ok=True)
            log(f"{arch}: kept the existing {final}: the rebuild does not pass the acceptance "
                f"rule ({'; '.join(why)}; --force replaces it)")
        results[arch] = {"state": status.state, "path": str(final), "kept": keep,
                         "score": score, "old_score": old, "report": report}
    return results
