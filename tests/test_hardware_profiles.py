"""Objective profiles: defaults, per-label user overrides, and errors that name file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardware.profiles import (
    ObjectiveProfile,
    ProfileError,
    load_profiles,
    save_user_profiles,
    user_profiles_path,
)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("THINKSCOPE_HOME", str(home))
    return home


def test_defaults_without_user_file() -> None:
    profiles = load_profiles()
    assert list(profiles) == ["10x", "40x", "100x"]
    assert profiles["10x"].pixel_size_um == pytest.approx(0.65)
    assert profiles["40x"].na == pytest.approx(0.95)
    assert profiles["40x"].immersion == "dry"
    assert profiles["40x"].pixel_size_um == pytest.approx(0.1625)
    assert profiles["100x"].immersion == "oil"
    assert profiles["100x"].na == pytest.approx(1.4)
    assert profiles["100x"].pixel_size_um == pytest.approx(0.065)
    assert all(p.offset_xy_um == (0.0, 0.0) and p.parfocal_z_um == 0.0 for p in profiles.values())


def test_every_field_is_documented() -> None:
    for name, field in ObjectiveProfile.model_fields.items():
        assert field.description, f"field {name} has no docstring"


def test_user_file_overrides_per_label_and_field(_isolated_home: Path) -> None:
    path = user_profiles_path()
    assert path == _isolated_home / "objectives.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"objectives": {
        "40x": {"offset_xy_um": [1.5, -2.0], "parfocal_z_um": 0.8},
        "60x": {"magnification": 60, "na": 1.2, "immersion": "water", "pixel_size_um": 0.108},
    }}))
    profiles = load_profiles()
    assert profiles["40x"].offset_xy_um == (1.5, -2.0)
    assert profiles["40x"].parfocal_z_um == pytest.approx(0.8)
    assert profiles["40x"].pixel_size_um == pytest.approx(0.1625)  # untouched field kept
    assert profiles["60x"].immersion == "water"
    assert profiles["100x"].pixel_size_um == pytest.approx(0.065)  # untouched label kept


def test_save_then_load_roundtrip(tmp_path: Path) -> None:
    profiles = load_profiles()
    changed = profiles["100x"].model_copy(update={"rotation_deg": 0.7})
    out = save_user_profiles({**profiles, "100x": changed}, tmp_path / "p.json")
    assert load_profiles(out)["100x"].rotation_deg == pytest.approx(0.7)


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"objectives": {"40x": {"na": 0.9,}}}')
    with pytest.raises(ProfileError, match="bad.json.*malformed JSON"):
        load_profiles(bad)


def test_invalid_field_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "neg.json"
    bad.write_text(json.dumps({"objectives": {"40x": {"pixel_size_um": -1}}}))
    with pytest.raises(ProfileError, match=r"neg\.json.*objectives\.40x\.pixel_size_um"):
        load_profiles(bad)
    bad.write_text(json.dumps({"objectives": {"40x": {"immersion": "glycerol"}}}))
    with pytest.raises(ProfileError, match=r"objectives\.40x\.immersion"):
        load_profiles(bad)
    bad.write_text(json.dumps({"objectives": {"20x": {"na": 0.5}}}))  # new label, incomplete
    with pytest.raises(ProfileError, match=r"objectives\.20x\.(magnification|pixel_size_um)"):
        load_profiles(bad)


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ProfileError, match="nope.json"):
        load_profiles(missing)


def test_profiles_are_frozen() -> None:
    p = load_profiles()["40x"]
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        p.na = 0.5  # type: ignore[misc]
