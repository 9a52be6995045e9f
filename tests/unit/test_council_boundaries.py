"""Another council's ward boundaries load by configuration alone: the GeoJSON property names that hold a
ward's code and name are settings (ward_code_property / ward_name_property), not constants in the code."""

import json
import shutil

import pytest

from caseway_router.domain.places import PlaceFinder
from caseway_shared.council import LIVERPOOL_DIR, load_council


def _renamed_council(tmp_path, code: str, name: str, *, configure: bool):
    folder = tmp_path / "council"
    shutil.copytree(LIVERPOOL_DIR, folder)
    boundaries = next(folder.glob("wards*.geojson"))
    collection = json.loads(boundaries.read_text())
    for feature in collection["features"]:
        props = feature["properties"]
        props[code], props[name] = props.pop("WD23CD"), props.pop("WD23NM")
    boundaries.write_text(json.dumps(collection))
    toml = folder / "council.toml"
    text = toml.read_text().replace('ward_code_property = "WD23CD"', f'ward_code_property = "{code}"')
    if configure:
        toml.write_text(text.replace('ward_name_property = "WD23NM"', f'ward_name_property = "{name}"'))
    else:
        toml.write_text(text.replace('ward_code_property = "' + code + '"', 'ward_code_property = "WD23CD"'))
    return folder


def test_boundaries_with_other_property_names_place_reports_by_configuration_alone(tmp_path):
    council = load_council(_renamed_council(tmp_path, "WD24CD", "WD24NM", configure=True))
    places = PlaceFinder(council)
    for feature in council.wards_geojson["features"]:
        props = feature["properties"]
        placed = places.locate_point(float(props["centroid_lat"]), float(props["centroid_lon"]))
        if placed.ward_code is None:  # a centroid can fall outside a concave ward
            continue
        assert placed.ward_code == props["WD24CD"]
        assert placed.ward_name == props["WD24NM"]


def test_boundaries_without_the_configured_properties_are_refused_with_the_setting_named(tmp_path):
    with pytest.raises(ValueError, match="ward_code_property"):
        load_council(_renamed_council(tmp_path, "WD24CD", "WD24NM", configure=False))
