"""The fast MOT engine equals motmetrics event for event; its parts (assignment, polygons) equal their
references; the random-set generator covers what it promises."""
from __future__ import annotations

import re

import numpy as np
import pytest

from corrtrack.evaluation import evaluate
from corrtrack.assignment import linear_sum_assignment, linear_sum_assignment_many
from corrtrack.evaluation.mot import evaluate_mot
from corrtrack.evaluation.polygon import points_in_any, points_in_polygon, points_in_regions
from corrtrack.evaluation.prepare import Report, prepare
from corrtrack.evaluation.randomsets import make_random_set


def test_lsap_equals_scipy_including_ties():
    from scipy.optimize import linear_sum_assignment as scipy_lsa

    rng = np.random.default_rng(0)
    for t in range(3000):
        r, c = rng.integers(1, 7, 2)
        kind = t % 3
        if kind == 0:
            m = rng.random((r, c))
        elif kind == 1:
            m = rng.integers(0, 3, (r, c)).astype(float)          # many ties
        else:
            m = np.round(rng.random((r, c)), 1)
        maximize = t % 2 == 0
        a, b = scipy_lsa(m, maximize=maximize), linear_sum_assignment(m, maximize=maximize)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), (m, maximize)



def test_lsap_of_a_stack_equals_scipy_on_each_matrix():
    from scipy.optimize import linear_sum_assignment as scipy_lsa

    rng = np.random.default_rng(1)
    for shape in ((5, 2, 3), (4, 3, 2), (6, 4, 4), (3, 1, 5), (2, 0, 3), (2, 25, 30)):
        stack = rng.integers(0, 3, shape).astype(float)             # ties; the last shape goes to SciPy
        for maximize in (False, True):
            got = linear_sum_assignment_many(stack, maximize=maximize)
            assert len(got) == shape[0]
            for m, (r, c) in zip(stack, got):
                a, b = scipy_lsa(m, maximize=maximize)
                assert np.array_equal(a, r) and np.array_equal(b, c), (m, maximize)

def test_points_strictly_inside_polygons():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    pts = np.array([[5, 5], [0, 5], [10, 10], [5, 0], [11, 5], [-1, -1], [9.999, 0.001], [np.nan, 5]])
    assert points_in_polygon(pts, square).tolist() == [True, False, False, False, False, False, True, False]
    concave = np.array([[0, 0], [10, 0], [10, 10], [5, 5], [0, 10]], float)   # notch at the top
    assert points_in_polygon(np.array([[5, 8], [5, 3], [5, 5], [2, 6]]), concave).tolist() == \
        [False, True, False, True]
    assert not points_in_polygon(np.array([[1.0, 1.0]]), square[:2]).any()       # degenerate: nothing inside
    assert points_in_any(np.array([[5, 5], [25, 5]]), [square, square + [20, 0]]).tolist() == [True, True]



def test_points_in_regions_tests_each_point_against_its_own_group_only():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    regions = [[square], None, [square + [20, 0], square[:2]], []]
    pts = np.array([[5, 5], [5, 5], [25, 5], [5, 5], [5, 5], [10, 5], [np.nan, 1]])
    owner = np.array([0, 1, 2, 2, 3, 0, 0])
    assert points_in_regions(pts, owner, regions).tolist() == [True, False, True, False, False, False, False]
    rng = np.random.default_rng(1)                  # integer points on edges and vertices included
    for _ in range(200):
        regions = [[rng.integers(0, 12, (rng.integers(2, 7), 2)).astype(float)
                    for _ in range(rng.integers(3))] for _ in range(4)]
        pts = rng.integers(-1, 13, (30, 2)).astype(float)
        owner = rng.integers(0, 4, 30)
        ref = [any(points_in_polygon(pts[i:i + 1], poly)[0] for poly in regions[owner[i]])
               for i in range(30)]
        assert points_in_regions(pts, owner, regions).tolist() == ref

@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_engine_equals_motmetrics_event_for_event(strict, seed):
    gt, pr = make_random_set(n_sequences=4, n_frames=25, seed=seed, tracks=(4, 8), p_duplicate=0.3,
                             fp_rate=1.0, swaps=(1, 4), switches=(1, 3), p_empty_pred_frame=0.15,
                             p_ignore_frame=0.3)
    seqs = prepare(gt, pr, Report())
    ev_fast, ev_ref = {}, {}
    c_fast = evaluate_mot(seqs, strict=strict, engine="fast", events=ev_fast)
    c_ref = evaluate_mot(seqs, strict=strict, engine="motmetrics", events=ev_ref)
    n = 0
    for name in ev_ref:
        assert sorted(ev_fast[name], key=repr) == sorted(ev_ref[name], key=repr), name
        n += len(ev_ref[name])
    kinds = {e[2] for evs in ev_ref.values() for e in evs}
    assert n > 1000 and kinds == {"MATCH", "SWITCH", "MISS", "FP"}
    for k in ("objects", "matches", "switches", "misses", "false_positives"):
        assert np.array_equal(getattr(c_fast, k), getattr(c_ref, k)), k
    np.testing.assert_allclose(c_fast.sum_dist, c_ref.sum_dist, rtol=1e-12)


def test_random_sets_cover_the_hard_cases():
    gt, pr = make_random_set(n_sequences=6, n_frames=40, seed=3)
    frames = [f for s in gt.values() for f in s.frames]
    pframes = [f for s in pr.values() for f in s.frames]
    assert any(not f.persons for f in frames)                          # unlabeled frames
    assert any(f.ignore_regions for f in frames)                       # ignore regions
    assert any(not p.present.any() for f in frames for p in f.persons)  # GT persons without joints
    assert any(not f.persons for f in pframes)                         # frames without predictions
    m = evaluate(gt, pr, hota=True)
    c = m.counts
    assert c.switches.sum() > 0 and c.misses.sum() > 0 and c.false_positives.sum() > 0
    assert 0 < m.total("ap") < 100 and 0 < m.total("hota") < 100


def test_sequence_labels_equal_frame_by_frame_rule():
    from corrtrack.evaluation.ap import frame_labels

    gt, pr = make_random_set(n_sequences=4, n_frames=30, seed=5, p_duplicate=0.4, tracks=(3, 8), jitter=0.3)
    n = 0
    for s in prepare(gt, pr, Report()):
        for fr in s.frames:
            assert np.array_equal(fr.labels, frame_labels(fr))
            n += int(fr.labels.sum())
    assert n > 500


@pytest.mark.parametrize("a_first", [True, False])
def test_two_objects_claiming_one_previous_hypothesis(a_first):
    try:
        from test_evaluation import person, seq           # pytest puts tests/ on sys.path
    except ImportError:
        from tests.test_evaluation import person, seq

    def P(tid, xy):
        return person(tid, {"nose": xy}, {"nose": 0.5})

    a2, b2 = person(1, {"nose": (10, 10)}), person(2, {"nose": (12, 10)})
    gt = {"v": seq("000020_mpii_test", [[person(1, {"nose": (10, 10)})], [person(2, {"nose": (50, 10)})],
                                         [a2, b2] if a_first else [b2, a2]])}
    pr = {"v": seq("000020_mpii_test", [[P(10, (10, 10))], [P(10, (50, 10))],
                                         [P(10, (11, 10)), P(11, (90, 90))]])}
    seqs = prepare(gt, pr, Report())
    ev_fast, ev_ref = {}, {}
    evaluate_mot(seqs, strict=True, engine="fast", events=ev_fast)
    evaluate_mot(seqs, strict=True, engine="motmetrics", events=ev_ref)
    assert sorted(ev_fast["v"], key=repr) == sorted(ev_ref["v"], key=repr)
    nose = 13
    last = [e for e in ev_ref["v"] if e[0] == nose and e[1] == 2]
    winner = 0 if a_first else 1          # compact index of the first GT object of frame 2 (A is 0, B is 1)
    assert (nose, 2, "MATCH", winner, 0) in last


def test_bench_smoke(tmp_path, capsys):
    from corrtrack.evaluation.bench import main

    assert main(["--sequences", "2", "--frames", "12", "--repeat", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sequences/s" in out and "CLI (python -m corrtrack.evaluate" in out
    # the in-memory evaluation as the training callback runs it (with HOTA) is timed, in CPU seconds
    assert re.search(r"in process, evaluate \(AP, MOT, HOTA: as the training callback\): [0-9.]+ s CPU", out)
    assert (tmp_path / "gt").is_dir() and (tmp_path / "metrics.json").is_file()
