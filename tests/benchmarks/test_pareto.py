from edgeport.benchmarks.pareto import pareto_front


def test_front_keeps_only_undominated_points():
    lat = [10.0, 5.0, 20.0, 5.0, 1.0]
    acc = [0.90, 0.85, 0.95, 0.80, 0.50]
    # 10/.90 front; 5/.85 front; 20/.95 front; 5/.80 dominated by 5/.85; 1/.50 front (fastest)
    assert pareto_front(lat, acc) == [True, True, True, False, True]


def test_ties_and_missing_values():
    # identical points do not dominate each other; None/NaN never on the front
    assert pareto_front([1.0, 1.0, None, float("nan")], [0.5, 0.5, 0.9, 0.9]) == [True, True, False, False]


def test_slower_and_worse_is_dominated():
    assert pareto_front([1.0, 2.0], [0.9, 0.8]) == [True, False]
