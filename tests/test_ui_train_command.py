"""The Training panel hands a job to torchrun: the copied command trains the same config."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

pytest_plugins = ["tests.test_ui_support"]


def test_copy_torchrun_command_button(qtbot: Any, window: Any, ui_env: Path) -> None:
    import main
    from thinkscope_gui.cli.train import config_from_args
    from thinkscope_gui.learn.train import TrainConfig

    panel = window.panels["Training"]
    store = ui_env / "a b.h5"
    panel.add_store(store)
    panel.form.set_value(TrainConfig(epochs=3, steps_per_epoch=7, batch_size=8, patch=32,
                                     out=str(ui_env / "m.safetensors"), threads=1))
    panel.procs.setValue(4)
    qtbot.mouseClick(panel.command_button, Qt.MouseButton.LeftButton)
    cmd = QApplication.clipboard().text()
    assert cmd and cmd in panel.status.text()
    argv = shlex.split(cmd)
    assert argv[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4"]
    back = config_from_args(main.build_parser().parse_args(argv[argv.index("main.py") + 1:]))
    want = panel.config()
    assert back.model_dump(exclude={"command"}) == want.model_dump(exclude={"command"})
    assert back.stores == [str(store)] and back.batch_size == 8
    assert not panel.running()  # nothing was started here
