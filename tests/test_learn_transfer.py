"""Transfer learning (issue 11) and fine-tune rebuilds (issue 8 §7), small and real: the
shipped fast model (trained on the ideal and the realistic stand), pairs of the achromat
stand, which no default model trains on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from main import main
from thinkscope_gui.learn.modelfile import DEFAULT_MODELS, load_model, read_meta
from thinkscope_gui.learn.rebuild import file_sha256
from thinkscope_gui.learn.sim_source import ALL_STANDS

pytestmark = pytest.mark.skipif("achromat" not in ALL_STANDS, reason="no realistic stands")


def test_fine_tuning_the_default_model_beats_it_and_the_same_pairs_from_scratch() -> None:
    from thinkscope_gui.learn.transfer import TransferRecipe, transfer_check

    # 16 pairs of the achromat stand (lower-NA objectives, closed condenser), which no
    # default model trains on, 20 steps each at the check's own rates and the model's own
    # augmentation ("off"). Measured (seeds 3/4): the shipped fast model as is +1.54 dB,
    # fine-tuned +2.16/+2.09, scratch +0.11/+0.40 (robust augmentation: +2.02/+1.87,
    # +0.15/+0.39)
    # (on the realistic stand, which the default models train on, fine-tuning had only
    # +0.04/+0.08 dB to add)
    rep = transfer_check(DEFAULT_MODELS["fast"], TransferRecipe(
        pairs=16, tile=64, steps=20, batch_size=8, patch=32, eval_n=2, eval_tile=48,
        threads=1))
    assert rep["recipe"]["stand"] == "achromat"
    g = {k: rep[k]["gain_db_clean"] for k in ("base", "finetuned", "scratch")}
    assert g["finetuned"] > g["base"] > g["scratch"], g
    assert rep["holds"]


def test_evaluate_transfer_cli_reports_the_three_runs(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "t.json"
    assert main(["evaluate", "fast", "--transfer", "--transfer-pairs", "4",
                 "--transfer-steps", "2", "--n", "1", "--tile", "48", "--threads", "1",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "transfer check" in text and "from scratch" in text
    rep = json.loads(out.read_text())
    assert rep["recipe"]["stand"] == "achromat" and rep["recipe"]["pairs"] == 4
    # both runs continue the recipe the model file records (the shipped one: "off")
    assert rep["recipe"]["augment"] == read_meta(DEFAULT_MODELS["fast"]).train_config["augment"]
    assert "augmentation off" in text
    assert main(["evaluate", "fast", "--transfer", "--transfer-pairs", "4",
                 "--transfer-steps", "2", "--n", "1", "--tile", "48", "--threads", "1",
                 "--transfer-augment", "robust", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["recipe"]["augment"] == "robust"
    capsys.readouterr()
    assert main(["evaluate", "fast", "--transfer", "--transfer-pairs", "1"]) == 2
    assert "--transfer-pairs" in capsys.readouterr().err


def test_rebuild_init_shipped_fine_tunes_and_records_the_init_model(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = tmp_path / "models"
    assert main(["rebuild-models", "--tiny", "--arch", "fast", "--init", "shipped",
                 "--out-dir", str(out_dir)]) == 0
    _, meta = load_model(out_dir / "default_fast.safetensors")
    init = meta.model_extra["init_model"]
    assert init["sha256"] == file_sha256(DEFAULT_MODELS["fast"])
    assert init["name"] == "default_fast.safetensors"
    assert meta.model_extra["rebuild_recipe"]["init"] == "shipped"
    assert meta.train_config["lr"] == pytest.approx(3e-4)  # a fine-tune's gentler rate
    assert not list(out_dir.glob(".init_*")) and not list(out_dir.glob(".rebuild_*"))
    assert main(["rebuild-models", "--tiny", "--init", str(tmp_path / "nope.safetensors"),
                 "--out-dir", str(out_dir)]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_acceptance_rule_without_a_floor_allows_at_most_0_1_db_loss_on_a_stand() -> None:
    from thinkscope_gui.learn.rebuild import better

    def rep(ideal: float, realistic: float) -> dict:  # no arch: no issue-11 floor applies
        return {"stands": {"ideal": {"1": {"gain_db_clean": ideal}},
                           "realistic": {"1": {"gain_db_clean": realistic}}}}

    old = rep(2.80, 1.08)
    assert better(rep(2.75, 1.50), old)          # 0.05 dB worse on ideal: accepted
    assert not better(rep(2.65, 1.50), old)      # 0.15 dB worse on ideal: refused
    assert not better(rep(3.00, 1.08), old)      # worst stand not better: refused
