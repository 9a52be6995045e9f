"""The grid cells the candidate search is keyed on (caseway_router.domain.areas): a report's cells must
cover every case within its radius, wherever it is, and stay few."""

import math

from hypothesis import given
from hypothesis import strategies as st

from caseway_router.domain.areas import case_cell, cells_within
from caseway_router.domain.duplicates import distance_m

latitudes = st.floats(min_value=-80, max_value=80, allow_nan=False)
longitudes = st.floats(min_value=-179.5, max_value=179.5, allow_nan=False)
radii = st.floats(min_value=0, max_value=500, allow_nan=False)


@given(
    lat=latitudes,
    lon=longitudes,
    radius=radii,
    bearing=st.floats(min_value=0, max_value=2 * math.pi),
    share=st.floats(min_value=0, max_value=1),
)
def test_every_point_within_the_radius_lies_in_a_searched_cell(lat, lon, radius, bearing, share):
    # A point `share` of the radius away in direction `bearing` (a local flat offset; then measured).
    north, east = share * radius * math.cos(bearing), share * radius * math.sin(bearing)
    other_lat = lat + north / 111_195
    other_lon = lon + east / (111_195 * math.cos(math.radians(other_lat)))
    if distance_m(lat, lon, other_lat, other_lon) > radius:
        return  # the flat offset overshot the sphere's distance: not a point within the radius
    assert case_cell(other_lat, other_lon) in cells_within(lat, lon, radius)


@given(lat=latitudes, lon=longitudes)
def test_a_point_is_in_its_own_search(lat, lon):
    assert cells_within(lat, lon, 0) == [case_cell(lat, lon)]


@given(lat=st.floats(min_value=49, max_value=61), lon=st.floats(min_value=-8, max_value=2))
def test_the_search_is_a_small_box_in_the_uk(lat, lon):
    # 60 m, Liverpool's largest radius: a few cells, not a strip of the map.
    assert len(cells_within(lat, lon, 60)) <= 4 * 6


def test_neighbouring_cells_have_neighbouring_keys_within_a_row():
    assert case_cell(53.4, -2.98) + 1 == case_cell(53.4, -2.98 + 0.0005)
    assert case_cell(53.4, -2.98) != case_cell(53.4 + 0.0005, -2.98)
