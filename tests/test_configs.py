"""Every validated config model documents every field (the GUI forms show them as tips)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from hardware.profiles import ObjectiveProfile
from thinkscope_gui.learn.meta import ModelMeta, Normalisation
from thinkscope_gui.learn.train import TrainConfig
from thinkscope_gui.pairs.plan import AcquisitionPlan, AutofocusSettings, QualityGates

MODELS = [ObjectiveProfile, AcquisitionPlan, AutofocusSettings, QualityGates, ModelMeta,
          Normalisation, TrainConfig]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_field_has_a_docstring(cls: type[BaseModel]) -> None:
    missing = [n for n, f in cls.model_fields.items() if not f.description]
    assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


@pytest.mark.parametrize("bad", [{"val_fraction": 1.0}, {"val_fraction": -0.1},
                                 {"patch": 4}, {"threads": 0}, {"patience": -1},
                                 {"max_val_tiles": 0}, {"sim_pairs": -1}])
def test_train_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        TrainConfig(**bad)
