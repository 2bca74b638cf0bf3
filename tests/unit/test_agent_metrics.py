"""Metric model, cardinality cap and Prometheus text exposition."""

import math

import pytest

from kernelscope.export.metrics import OVERFLOW, CardinalityLimiter, Metric, log2_histogram
from kernelscope.export.prometheus import render


def test_render_counter_gauge_escaping():
    text = render([
        Metric("a_total", "counter", "line1\nline2", [({"comm": 'we"ird\\x\n'}, 3)]),
        Metric("g", "gauge", "a gauge", [({}, 1.5)]),
    ])
    assert "# HELP a_total line1\\nline2\n# TYPE a_total counter\n" in text
    assert 'a_total{comm="we\\"ird\\\\x\\n"} 3\n' in text
    assert "g 1.5\n" in text


def test_render_histogram():
    h = log2_histogram([1, 2, 0, 1], scale=1.0)   # 0-1:1, 2-3:2, 8-15:1
    assert h[0] == [(2.0, 1), (4.0, 3), (8.0, 3), (16.0, 4), (math.inf, 4)]
    assert h[2] == 4
    text = render([Metric("lat_seconds", "histogram", "x", [({"disk": "vda"}, h)])])
    assert 'lat_seconds_bucket{disk="vda",le="2"} 1' in text
    assert 'lat_seconds_bucket{disk="vda",le="+Inf"} 4' in text
    assert 'lat_seconds_count{disk="vda"} 4' in text
    assert 'lat_seconds_sum{disk="vda"} ' in text


def test_render_rejects_bad_names_and_duplicates():
    with pytest.raises(ValueError):
        render([Metric("bad-name", "gauge", "", [({}, 1)])])
    with pytest.raises(ValueError):
        render([Metric("x", "gauge", "", [({"bad-label": 1}, 1)])])
    with pytest.raises(ValueError):
        render([Metric("x", "gauge", "", []), Metric("x", "gauge", "", [])])
    with pytest.raises(ValueError):
        Metric("x", "summary", "")


def test_cardinality_cap_folds_into_overflow():
    lim = CardinalityLimiter(3)
    m = Metric("c_total", "counter", "", [({"comm": f"p{i}", "result": "ok"}, i + 1) for i in range(6)])
    out = lim.apply(m)
    assert len(out.samples) == 4
    kept = {s[0]["comm"]: s[1] for s in out.samples}
    assert kept["p0"] == 1 and kept["p1"] == 2 and kept["p2"] == 3
    assert kept[OVERFLOW] == 4 + 5 + 6
    assert lim.folded == {"c_total": 3}
    # the first series stay stable on the next scrape, even in another order
    out2 = lim.apply(Metric("c_total", "counter", "", list(reversed(m.samples))))
    assert {s[0]["comm"] for s in out2.samples} == {"p0", "p1", "p2", OVERFLOW}
    assert lim.folded == {"c_total": 6}
    # total is conserved
    assert sum(v for _, v in out2.samples) == sum(v for _, v in m.samples)


def test_cardinality_cap_histograms_merge():
    lim = CardinalityLimiter(1)
    a = log2_histogram([0, 2])
    b = log2_histogram([1, 0, 0, 3])
    c = log2_histogram([5])
    out = lim.apply(Metric("h", "histogram", "", [({"k": "a"}, a), ({"k": "b"}, b), ({"k": "c"}, c)]))
    over = dict((s[0]["k"], s[1]) for s in out.samples)[OVERFLOW]
    buckets, total, count = over
    assert count == 4 + 5
    assert buckets[-1] == (math.inf, 9)
    assert dict(buckets)[2.0] == 1 + 5
