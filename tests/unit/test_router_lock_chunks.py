"""Runs of a batch's reports whose advisory locks fit the budget (caseway_router.domain.areas.lock_chunks)."""

from hypothesis import given
from hypothesis import strategies as st

from caseway_router.domain.areas import lock_chunks

keys = st.lists(st.lists(st.integers(min_value=0, max_value=60), max_size=12), max_size=40)


@given(keys_per_item=keys, most=st.integers(min_value=1, max_value=30))
def test_runs_cover_every_item_once_in_order_within_the_budget(keys_per_item, most):
    chunks = lock_chunks(keys_per_item, most_locks=most)
    assert [i for chunk in chunks for i in chunk] == list(range(len(keys_per_item)))
    for chunk in chunks:
        held = set().union(*(keys_per_item[i] for i in chunk))
        # Within budget, unless one item alone wants more (then it runs alone).
        assert len(held) <= most or len(chunk) == 1


def test_reports_sharing_cells_share_a_run():
    same = [[1, 2, 3]] * 50
    assert lock_chunks(same, most_locks=3) == [range(50)]


def test_scattered_reports_are_split():
    scattered = [[10 * i + k for k in range(9)] for i in range(10)]
    assert lock_chunks(scattered, most_locks=20) == [
        range(2),
        range(2, 4),
        range(4, 6),
        range(6, 8),
        range(8, 10),
    ]
