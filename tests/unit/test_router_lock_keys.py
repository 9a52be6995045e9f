"""The advisory lock keys a report takes (caseway_router.domain.areas): two reports that could be one
problem — one family, within its radius of each other, anywhere a council may be — always share a key, so
the second waits for the first's case; other families never contend; keys are stable across processes."""

import math

from hypothesis import given
from hypothesis import strategies as st

from caseway_router.domain.areas import address_lock_key, area_lock_keys
from caseway_router.domain.duplicates import distance_m

CELL_M = 120.0  # the largest duplicate radius of a council (the router takes it from the categories)


@given(
    lat=st.floats(min_value=-66, max_value=66, allow_nan=False),
    lon=st.floats(min_value=-179, max_value=179, allow_nan=False),
    bearing=st.floats(min_value=0, max_value=2 * math.pi),
    share=st.floats(min_value=0, max_value=1),
)
def test_two_points_within_the_largest_radius_share_a_lock(lat, lon, bearing, share):
    north, east = share * CELL_M * math.cos(bearing), share * CELL_M * math.sin(bearing)
    other_lat = lat + north / 111_195
    other_lon = lon + east / (111_195 * math.cos(math.radians(other_lat)))
    if distance_m(lat, lon, other_lat, other_lon) > CELL_M:
        return  # the flat offset overshot: not a pair within the radius
    mine = set(area_lock_keys("waste", lat, lon, cell_m=CELL_M))
    theirs = set(area_lock_keys("waste", other_lat, other_lon, cell_m=CELL_M))
    assert mine & theirs


def test_keys_are_per_family_stable_and_nine_per_point():
    keys = area_lock_keys("waste", 53.4021, -2.98, cell_m=CELL_M)
    assert len(set(keys)) == 9
    assert keys == area_lock_keys("waste", 53.4021, -2.98, cell_m=CELL_M)  # no salted hash()
    assert not set(keys) & set(area_lock_keys("highways", 53.4021, -2.98, cell_m=CELL_M))
    assert address_lock_key("waste", "12 bold st") == address_lock_key("waste", "12 bold st")
    assert address_lock_key("waste", "12 bold st") != address_lock_key("highways", "12 bold st")
    assert all(-(2**63) <= key < 2**63 for key in [*keys, address_lock_key("waste", "x")])  # a bigint


def test_points_far_apart_take_disjoint_locks():
    here = set(area_lock_keys("waste", 53.4021, -2.98, cell_m=CELL_M))
    there = set(area_lock_keys("waste", 53.4021 + 2000 / 111_195, -2.98, cell_m=CELL_M))
    assert not here & there
