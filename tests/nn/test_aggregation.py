"""CMR's semantic aggregation: the groups come from the hand's keypoint groups, and each aggregated map is the
sum of its group's heatmaps."""

import itertools

import pytest
import torch

from handrecon.nn import HeatmapAggregation, aggregation_groups




def test_groups():
    assert aggregation_groups("tip") == list(itertools.combinations((4, 8, 12, 16, 20), 2))
    assert len(aggregation_groups("tip")) == 10
    assert aggregation_groups("part") == [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16),
                                          (17, 18, 19, 20)]
    assert aggregation_groups("level") == [(1, 5, 9, 13, 17), (2, 6, 10, 14, 18), (3, 7, 11, 15, 19),
                                           (4, 8, 12, 16, 20)]
    assert aggregation_groups("all") == [tuple(range(21))]
    assert aggregation_groups(("tip", "part")) == aggregation_groups("tip") + aggregation_groups("part")
    with pytest.raises(ValueError, match="group kind"):
        aggregation_groups(("tip", "finger"))


@pytest.mark.parametrize("kinds", [("tip",), ("part",), ("level",), ("part", "level", "tip"), ("all",)])
def test_aggregated_maps_sum_their_group(kinds):
    torch.manual_seed(0)
    heatmaps = torch.rand(2, 21, 5, 6)
    agg = HeatmapAggregation(kinds)
    out = agg(heatmaps)
    assert out.shape == (2, agg.num_groups, 5, 6)
    for g, group in enumerate(agg.groups):
        expected = sum(heatmaps[:, k] for k in group)
        assert torch.allclose(out[:, g], expected, atol=1e-6)
    # a heatmap only at the thumb tip lights exactly the groups that hold keypoint 4
    one = torch.zeros(1, 21, 5, 6)
    one[0, 4, 2, 3] = 1.0
    lit = agg(one)[0, :, 2, 3]
    assert lit.tolist() == [1.0 if 4 in group else 0.0 for group in agg.groups]
    with pytest.raises(ValueError, match="heatmaps"):
        agg(torch.zeros(1, 20, 5, 6))
