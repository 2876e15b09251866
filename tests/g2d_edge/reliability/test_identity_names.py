"""Issue 12, class 6 (names): control characters in identity names are refused (InputError) instead of being
silently changed by a save (`'bob\\0'` merged into `'bob'`), names have a length cap, and the CLI prints what it
was given without raw escapes or extra lines."""
import numpy as np
import pytest

from g2d_edge.cli import main
from g2d_edge.errors import InputError
from g2d_edge.gallery import Gallery

BAD_NAMES = ["bob\0", "\0", "a\nb", "\x1b[31mred", "tab\there", "bell\x07", "del\x7f", "c1\x9b", "rtl\u202eevil",
             "line\u2028sep", "surrogate\ud800"]


def unit(i):
    return np.eye(4, dtype=np.float32)[i]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_control_characters_are_refused(name, tmp_path):
    g = Gallery()
    g.add("bob", unit(0))
    with pytest.raises(InputError, match="control character U\\+"):
        g.add(name, unit(1))
    with pytest.raises(InputError, match="control character"):
        g.rename("bob", name)
    assert g.names() == ["bob"] and g.num_templates == 1  # nothing merged into 'bob', nothing lost
    g.save(tmp_path / "g.npz")
    assert Gallery.load(tmp_path / "g.npz").names() == ["bob"]


def test_names_have_a_length_cap_and_printable_unicode_is_kept(tmp_path):
    from g2d_edge.text import MAX_NAME_LENGTH

    g = Gallery()
    g.add("x" * MAX_NAME_LENGTH, unit(0))
    with pytest.raises(InputError, match=f"1000000 characters; at most {MAX_NAME_LENGTH}") as err:
        g.add("y" * 1_000_000, unit(1))
    assert len(str(err.value)) < 300  # the message does not repeat the name
    names = ["José", "李小龙", "Anne-Marie O'Neil", "Zoë 🙂", "محمد‌رضا"]  # the last one has a ZWNJ
    for i, name in enumerate(names):
        g.add(name, unit(i % 4))
    g.save(tmp_path / "g.npz")
    assert Gallery.load(tmp_path / "g.npz").names() == sorted(names + ["x" * MAX_NAME_LENGTH])


def test_enroll_refuses_a_bad_name_before_any_work(recognizer, people, monkeypatch):
    recognizer.gallery = Gallery()
    monkeypatch.setattr(recognizer.detector, "detect", lambda frame: pytest.fail("detection ran"))
    with pytest.raises(InputError, match="control character U\\+0000"):
        recognizer.enroll("bob\0", next(iter(people.values()))[0])
    assert len(recognizer.gallery) == 0


def test_cli_prints_names_and_paths_on_one_line_without_escapes(capsys, tmp_path, tiny_onnx_model, people):
    photo = next(iter(people.values()))[0]
    evil = tmp_path / "x\n\x1b[2Jg2d: ok.jpg"
    assert main(["verify", str(evil), str(photo), "--model", str(tiny_onnx_model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and err.startswith("g2d: error: image not found: ")
    assert "x\\n\\x1b[2Jg2d: ok.jpg" in err
    gallery = tmp_path / "g.npz"
    assert main(["enroll", "\x1b[2Jmallory", str(photo), "--gallery", str(gallery), "--model",
                 str(tiny_onnx_model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "control character U+001B" in err
    assert main(["enroll", "z" * 1_000_000, str(photo), "--gallery", str(gallery), "--model",
                 str(tiny_onnx_model)]) == 1
    err = capsys.readouterr().err
    assert len(err) < 300 and not gallery.exists()
