"""Issue 12, class 7 (model sidecar): every field of a model's JSON sidecar is type- and range-checked; a
non-numeric threshold (or any other bad field) is a ModelError naming the field, from `ModelSidecar.load`, from
`Recognizer(model=...)` and from the CLI, never a ValueError/TypeError later on."""
import json

import pytest

from g2d_edge import Recognizer
from g2d_edge.cli import main
from g2d_edge.errors import ModelError
from g2d_edge.sidecar import ModelSidecar

BAD_FIELDS = [
    ("threshold", "abc"), ("threshold", "0.5"), ("threshold", None), ("threshold", 2.5), ("threshold", True),
    ("threshold_far", "x"), ("embedding_dim", "512"), ("embedding_dim", 0), ("embedding_dim", 512.0),
    ("num_classes", -1), ("embedding_space", ""), ("embedding_space", 7), ("name", ["a"]), ("outputs", "embedding"),
    ("class_names", [1, 2]), ("config", []), ("engine", "fp16"), ("schema_version", "1"), ("input", "faces"),
    ("input", {"height": "112"}), ("input", {"dtype": "float128x"}), ("trained_on", 3),
]


def with_field(sidecar_path, field, value):
    data = json.loads(sidecar_path.read_text())
    data[field] = value
    sidecar_path.write_text(json.dumps(data))


@pytest.mark.parametrize("field, value", BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_bad_sidecar_field_is_a_model_error_naming_it(tiny_model_copy, field, value):
    sidecar = tiny_model_copy.with_suffix(".json")
    assert ModelSidecar.load(sidecar).threshold == pytest.approx(0.42)  # the untouched sidecar is fine
    with_field(sidecar, field, value)
    with pytest.raises(ModelError, match=f"field '{field}'|field '(height|dtype)'") as err:
        ModelSidecar.load(sidecar)
    assert str(sidecar) in str(err.value)


def test_recognizer_and_cli_refuse_a_non_numeric_threshold(tiny_model_copy, people, capsys):
    with_field(tiny_model_copy.with_suffix(".json"), "threshold", "abc")
    with pytest.raises(ModelError, match="field 'threshold' is 'abc', not a number in \\[-1, 1\\]"):
        Recognizer(model=tiny_model_copy)
    photo = next(iter(people.values()))[0]
    assert main(["verify", str(photo), str(photo), "--model", str(tiny_model_copy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("g2d: error: ") and "threshold" in err


#: Issue 22: a sidecar edited to claim another input size, channel count, class count or output list.
EDITED = [("input", {"height": 100}, "takes faces of shape"), ("input", {"width": 96}, "takes faces of shape"),
          ("input", {"channels": 1}, "takes faces of shape"), ("num_classes", 7, "logits of shape"),
          ("outputs", ["embedding"], "has 2 \\(embedding, logits\\)"), ("outputs", ["embedding", "other"], "lacks")]


@pytest.mark.parametrize("field, value, words", EDITED, ids=[f"{f}={v!r}" for f, v, _ in EDITED])
def test_a_sidecar_edited_against_its_graph_is_a_model_error(tiny_model_copy, people, field, value, words):
    sidecar = tiny_model_copy.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data[field] = {**data[field], **value} if isinstance(value, dict) else value
    sidecar.write_text(json.dumps(data))
    photo = next(iter(people.values()))[0]
    with pytest.raises(ModelError, match=words):
        with Recognizer(model=tiny_model_copy) as rec:
            rec.enroll("ann", photo)
