"""Preset files: every number has a source; malformed files give one clear error."""
from __future__ import annotations

import pytest

from hw_models import ConfigError, list_soc_presets, load_soc
from hw_models.soc import _SCHEMA, PRESET_DIR

DIANA_TOML = (PRESET_DIR / "diana.toml").read_text()


def test_diana_preset_has_a_source_for_every_number(soc):
    assert "diana" in list_soc_presets()
    assert set(soc.sources) == set(_SCHEMA)
    assert all(len(note) > 10 for note in soc.sources.values())
    assert soc.clock_hz == 260e6
    assert (soc.power.digital_mw, soc.power.analog_mw, soc.power.both_mw) == (24.96, 28.74, 42.39)
    assert soc.analog.ox_unroll_choices == (1, 2, 4, 8)


def test_user_preset_file_changes_the_model(tmp_path):
    faster = tmp_path / "fast.toml"
    faster.write_text(DIANA_TOML.replace("value = 260e6", "value = 520e6")
                      .replace('name = "diana"', 'name = "diana-2x"'))
    soc = load_soc(faster)
    assert soc.name == "diana-2x" and soc.clock_hz == 520e6


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("value = 260e6", "value = -1"), "positive number"),
    (lambda t: t.replace("value = 16\n", 'value = "16"\n', 1), "positive integer"),
    (lambda t: t.replace("[clock_hz]\nvalue = 260e6\n", "[clock_hz]\n"), "'clock_hz' must be"),
    (lambda t: t + "\n[spare_mw]\nvalue = 1\nsource = \"x\"\n", "unknown key 'spare_mw'"),
    (lambda t: t + "\n[[broken", "not valid TOML"),
    (lambda t: t.replace("value = [1, 2, 4, 8]", "value = []"), "list of positive integers"),
    (lambda t: t.replace("value = 260e6", "value = nan"), "positive number"),
    (lambda t: t.replace("value = 260e6", "value = inf"), "positive number"),
])
def test_malformed_preset_rejected(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(DIANA_TOML))
    with pytest.raises(ConfigError, match=message):
        load_soc(path)


def test_empty_source_note_rejected(tmp_path):
    path = tmp_path / "bad.toml"
    start = DIANA_TOML.index('source = "ODiMO models/model_diana.py: F')
    end = DIANA_TOML.index("\n", start)
    path.write_text(DIANA_TOML[:start] + 'source = "  "' + DIANA_TOML[end:])
    with pytest.raises(ConfigError, match="'clock_hz' needs a non-empty source"):
        load_soc(path)


def test_unknown_preset_name():
    with pytest.raises(ConfigError, match="unknown hardware 'tpu'"):
        load_soc("tpu")


# ---- presets that extend another -------------------------------------------------------

def test_diana_streamed_is_diana_with_its_weights_streamed(soc):
    streamed = load_soc("diana-streamed")
    assert "diana-streamed" in list_soc_presets()
    assert streamed.memory.weights_resident is False and soc.memory.weights_resident == "auto"
    assert streamed.name == "diana-streamed"
    assert (streamed.clock_hz, streamed.digital, streamed.analog, streamed.power) == (
        soc.clock_hz, soc.digital, soc.analog, soc.power)
    changed = {key for key in soc.sources if streamed.sources[key] != soc.sources[key]}
    assert changed == {"memory.weights_resident"}


def test_a_user_preset_extends_a_file_beside_it(tmp_path):
    (tmp_path / "base.toml").write_text(DIANA_TOML)
    child = tmp_path / "sub" / "child.toml"
    child.parent.mkdir()
    child.write_text('extends = "../base.toml"\nname = "child"\n'
                     '[clock_hz]\nvalue = 520e6\nsource = "a faster clock"\n')
    soc = load_soc(child)
    assert soc.name == "child" and soc.clock_hz == 520e6 and soc.power.digital_mw == 24.96
    assert soc.sources["clock_hz"] == "a faster clock"


def test_the_fingerprint_of_an_extending_preset_covers_its_base(tmp_path):
    import hashlib

    from hw_models.soc import preset_sha256
    plain = PRESET_DIR / "diana.toml"
    assert preset_sha256("diana") == hashlib.sha256(plain.read_bytes()).hexdigest()
    base, child = tmp_path / "base.toml", tmp_path / "child.toml"
    base.write_text(DIANA_TOML)
    child.write_text('extends = "base.toml"\nname = "child"\n')
    before = preset_sha256(child)
    base.write_text(DIANA_TOML.replace("value = 260e6", "value = 520e6"))
    assert preset_sha256(child) != before  # an edited base is another preset
    assert preset_sha256("diana-streamed") != preset_sha256("diana")


@pytest.mark.parametrize("text, message", [
    ('extends = "loop.toml"\nname = "loop"\n', "'extends' chain longer"),
    ('extends = 3\nname = "x"\n', "'extends' must be a preset name or a file path"),
    ('extends = "missing.toml"\nname = "x"\n', "unknown hardware 'missing.toml'"),
])
def test_bad_extends_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "loop.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_soc(path)
