"""Issue 22, class "names": a name is stored and looked up in Unicode NFC wherever it enters (add, enroll, remove,
rename, `in`, folder names of `g2d enroll --folder`, names read from a file); names with nothing visible in them,
the bidirectional marks U+200E / U+200F / U+061C and invisible characters such as U+200B are refused, so that two
people can never list identically."""
import json
import unicodedata

import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import InputError
from g2d_edge.gallery import Gallery
from g2d_edge.text import printable

NFC = "Jos\u00e9"
NFD = unicodedata.normalize("NFD", NFC)


@pytest.mark.parametrize("name", ["\u200b", "\u3164", "\u2800", "\u3164\u3164", " \u2800 ", "\u115f\u1160",
                                  "\uffa0", "\u0301", "\u200c", "\u200d\u200d", "\u00ad", "\ufeff"])
def test_names_with_nothing_visible_are_refused(name):
    with pytest.raises(InputError, match="no visible character|invisible character"):
        Gallery().add(name, np.ones(4))


@pytest.mark.parametrize("name", ["ann\u200e", "\u200fbob", "x\u061cy", "alice\u200b", "al\u2060ice", "\ufeffeve",
                                  "so\u00adphie"])
def test_bidirectional_marks_and_invisible_characters_are_refused_anywhere(name):
    g = Gallery()
    g.add("alice", np.ones(4))
    with pytest.raises(InputError, match="U\\+"):
        g.add(name, np.ones(4))
    with pytest.raises(InputError, match="U\\+"):
        g.rename("alice", name)
    assert g.names() == ["alice"]
    assert printable(name) != name and "\\" in printable(name)  # and printed visibly, wherever it appears


@pytest.mark.parametrize("name", ["\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627", "\U0001f469\u200d\U0001f4bb",
                                  "\uae40\ubbfc\uc900", "\u3164alice", NFC, "O'Brien-Smith"])
def test_real_names_stay_accepted(name):
    g = Gallery()
    g.add(name, np.ones(4))
    assert g.names() == [unicodedata.normalize("NFC", name)]


def test_a_name_is_stored_and_found_in_nfc_whatever_form_it_comes_in(tmp_path):
    g = Gallery()
    assert g.add(NFD, np.ones(4)) == 1
    assert g.add(NFC, np.ones(4) * -1) == 2  # the same person
    assert g.names() == [NFC] and NFD in g and NFC in g
    assert g.tagged_templates(NFD)[0].shape == (2, 4)
    g.rename(NFD, "Jo")
    g.rename("Jo", NFD)
    assert g.names() == [NFC]
    g.save(tmp_path / "g.npz")
    assert Gallery.load(tmp_path / "g.npz").remove(NFD) == 2


def test_a_file_holding_a_decomposed_name_loads_it_in_nfc(tmp_path):
    g = Gallery()
    g.add("ann", np.ones(4))
    path = g.save(tmp_path / "g.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(path, **{**arrays, "names": np.array([NFD])})
    loaded = Gallery.load(path)
    assert loaded.names() == [NFC]
    loaded.remove(NFC)
    loaded.save()
    assert Gallery.load(path).names() == []


def test_a_decomposed_folder_name_is_removed_by_the_typed_name(tmp_path, people, tiny_onnx_model, capsys):
    root = tmp_path / "people"
    photos = next(iter(people.values()))
    (root / NFD).mkdir(parents=True)  # as macOS writes "José"
    for p in photos[:2]:
        (root / NFD / p.name).write_bytes(p.read_bytes())
    gallery = tmp_path / "g.npz"
    assert main(["enroll", "--folder", str(root), "--gallery", str(gallery), "--model", str(tiny_onnx_model),
                 "--json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)["enrolled"]] == [NFC]
    assert main(["gallery", "remove", NFC, "--gallery", str(gallery)]) == 0, capsys.readouterr().err
    assert Gallery.load(gallery).names() == []
