"""The budget's three outcomes, decided on intervals from the counts (no TensorFlow: pure arithmetic)."""

from edgeport.export.int8.budget import DEFAULT_BUDGET, Budget
from edgeport.intervals import MET, MISSED, UNDECIDED


def _figures(images, agreements, decided_images=0, decided_agreements=0):
    # Keras right on every image, the artifact wrong where it disagrees: (both, artifact only, Keras only, neither)
    return {"images": images, "agreements": agreements, "agreement_pct": 100.0 * agreements / images,
            "top1_pairs": (agreements, 0, images - agreements, 0), "delta_top1_pts": -100.0 * (images - agreements) / images,
            "decided_images": decided_images, "decided_agreements": decided_agreements}


def test_met_only_when_the_whole_interval_clears_the_limit():
    budget = Budget(max_drop=None, min_agreement=97.0)
    assert budget.decide(_figures(2000, 1990)).outcome == MET          # 99.5 % [99.1, 99.8]
    assert budget.decide(_figures(200, 199)).outcome == MET            # 99.5 % on 200: lower bound 97.2
    assert budget.decide(_figures(200, 198)).outcome == UNDECIDED      # 99 % on 200: lower bound 96.4
    assert budget.decide(_figures(100, 99)).outcome == UNDECIDED       # 99 % on 100: lower bound ~94.6


def test_missed_only_on_evidence():
    budget = Budget(max_drop=None, min_agreement=97.0)
    assert budget.decide(_figures(2000, 1800)).outcome == MISSED       # 90 %: upper bound far below 97
    assert budget.decide(_figures(50, 47)).outcome == UNDECIDED        # 94 % on 50 images: could be 97


def test_one_missed_limit_misses_the_budget():
    budget = Budget(max_drop=1.0, min_agreement=50.0)
    decision = budget.decide(_figures(2000, 1900))                     # agreement met, Δtop-1 -5 points missed
    assert decision.outcome == MISSED
    assert {d.name: d.outcome for d in decision.limits} == {"max_drop": MISSED, "min_agreement": MET}


def test_no_image_to_decide_on_is_not_a_pass():
    decision = DEFAULT_BUDGET.decide(_figures(200, 100, decided_images=0))
    assert decision.outcome == UNDECIDED
    assert decision.limits == ()
    assert "no image to decide it on" in decision.describe()
    assert decision.to_dict()["note"] == decision.describe()
