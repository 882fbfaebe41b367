from tests.test_ui_panels import *  # noqa
pytest_plugins = ["tests.test_ui_support"]
def test_probe(window, pairs_file):
    p = window.panels["Acquisition"]
    print("\nPROBE", p.eta.text(), "|", p.last_pair.text())
