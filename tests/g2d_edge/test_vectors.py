"""g2d_edge.vectors.l2_normalise: the one L2 normalisation (backends, galleries, evaluation, benchmarks)."""
import numpy as np

from g2d_edge.vectors import l2_normalise


def test_unit_rows_in_the_asked_precision_and_zero_rows_stay_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0]])
    out = l2_normalise(x)
    assert out.dtype == np.float32 and np.allclose(out[0], [0.6, 0.8]) and not out[1].any()
    assert np.isnan(out[2]).all()
    wide = l2_normalise(x, dtype=np.float64)
    assert wide.dtype == np.float64 and wide[0, 0] == 0.6
