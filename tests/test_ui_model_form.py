"""The model form shows a new value in the editors it has (Start writes the unique output
name back into the form: rebuilding every editor then cost the GUI thread ~40 ms)."""

from __future__ import annotations

from typing import Any

from thinkscope_gui.pairs.plan import AcquisitionPlan, AutofocusSettings
from thinkscope_gui.ui.model_form import ModelForm


def test_set_value_fills_the_same_editors_and_round_trips(qtbot: Any) -> None:
    plan = AcquisitionPlan(grid=(2, 2), center_um=(5000.0, 0.0), output="a.h5")
    form = ModelForm(plan)
    qtbot.addWidget(form)
    editors = {name: w for name, (w, _tp, _opt) in form._editors.items()}
    changed: list[int] = []
    form.changed.connect(lambda: changed.append(1))

    new = plan.model_copy(update={
        "grid": (3, 5), "center_um": (-12.5, 40.0), "output": "b (2).h5",
        "autofocus": AutofocusSettings(search_range_um=7.0, coarse_step_um=1.5,
                                       fine_step_um=0.25)})
    form.set_value(new)
    assert form.value() == new
    assert {name: w for name, (w, _tp, _opt) in form._editors.items()} == editors
    assert changed == []  # as when the editors are built: a set value is not an edit

    # an optional value (a line edit) set and cleared again
    rect = new.model_copy(update={"rectangle_um": (0.0, 100.0, 0.0, 50.0)})
    form.set_value(rect)
    assert form.value() == rect
    form.set_value(new)
    assert form.value() == new and form._editors["rectangle_um"][0] is editors["rectangle_um"]
