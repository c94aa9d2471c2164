"""The local time zone of a jurisdiction: the state's zone, or the county's where a state spans
two (IANA names, from the standard tz database in `zoneinfo`). Pure data and one lookup.

Statutory clocks (a child's age, calendar and business days) are counted on the local calendar
of the jurisdiction where the child is in care. Counties split between two zones take the zone
of their county seat.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from zoneinfo import ZoneInfo

EASTERN, CENTRAL, MOUNTAIN, PACIFIC = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)

STATE_ZONES: Mapping[str, str] = {
    "AL": CENTRAL, "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": CENTRAL,
    "CA": PACIFIC, "CO": MOUNTAIN, "CT": EASTERN, "DE": EASTERN, "DC": EASTERN,
    "FL": EASTERN, "GA": EASTERN, "HI": "Pacific/Honolulu", "ID": "America/Boise",
    "IL": CENTRAL, "IN": "America/Indiana/Indianapolis", "IA": CENTRAL, "KS": CENTRAL,
    "KY": "America/Kentucky/Louisville", "LA": CENTRAL, "ME": EASTERN, "MD": EASTERN,
    "MA": EASTERN, "MI": "America/Detroit", "MN": CENTRAL, "MS": CENTRAL, "MO": CENTRAL,
    "MT": MOUNTAIN, "NE": CENTRAL, "NV": PACIFIC, "NH": EASTERN, "NJ": EASTERN,
    "NM": MOUNTAIN, "NY": EASTERN, "NC": EASTERN, "ND": CENTRAL, "OH": EASTERN,
    "OK": CENTRAL, "OR": PACIFIC, "PA": EASTERN, "RI": EASTERN, "SC": EASTERN,
    "SD": CENTRAL, "TN": CENTRAL, "TX": CENTRAL, "UT": MOUNTAIN, "VT": EASTERN,
    "VA": EASTERN, "WA": PACIFIC, "WV": EASTERN, "WI": CENTRAL, "WY": MOUNTAIN,
    "PR": "America/Puerto_Rico", "VI": "America/St_Thomas", "GU": "Pacific/Guam",
    "AS": "Pacific/Pago_Pago", "MP": "Pacific/Saipan",
}  # fmt: skip


def _counties(zone: str, names: str) -> dict[str, str]:
    return {name.strip().casefold(): zone for name in names.split(",")}


#: Counties whose zone is not their state's (by county seat).
COUNTY_ZONES: Mapping[str, Mapping[str, str]] = {
    "TX": _counties(MOUNTAIN, "El Paso, Hudspeth"),
    "KY": _counties(
        CENTRAL,
        "Adair, Allen, Ballard, Barren, Breckinridge, Butler, Caldwell, Calloway, Carlisle,"
        "Christian, Clinton, Crittenden, Cumberland, Daviess, Edmonson, Fulton, Graves,"
        "Grayson, Green, Hancock, Hart, Henderson, Hickman, Hopkins, Livingston, Logan, Lyon,"
        "McCracken, McLean, Marshall, Metcalfe, Monroe, Muhlenberg, Ohio, Russell, Simpson,"
        "Todd, Trigg, Union, Warren, Webster",
    ),
    "FL": _counties(
        CENTRAL,
        "Escambia, Santa Rosa, Okaloosa, Walton, Holmes, Washington, Bay, Jackson, Calhoun",
    ),
    "TN": _counties(
        EASTERN,
        "Anderson, Blount, Bradley, Campbell, Carter, Claiborne, Cocke, Grainger, Greene,"
        "Hamblen, Hamilton, Hancock, Hawkins, Jefferson, Johnson, Knox, Loudon, McMinn, Meigs,"
        "Monroe, Morgan, Polk, Rhea, Roane, Scott, Sevier, Sullivan, Unicoi, Union, Washington",
    ),
    "IN": _counties(
        CENTRAL,
        "Lake, Porter, LaPorte, Newton, Jasper, Starke, Gibson, Posey, Vanderburgh, Warrick,"
        "Spencer, Perry",
    ),
    "MI": _counties(CENTRAL, "Gogebic, Iron, Dickinson, Menominee"),
    "ND": _counties(
        MOUNTAIN, "Adams, Billings, Bowman, Golden Valley, Grant, Hettinger, Slope, Stark"
    ),
    "SD": _counties(
        MOUNTAIN,
        "Bennett, Butte, Corson, Custer, Dewey, Fall River, Haakon, Harding, Jackson, Lawrence,"
        "Meade, Oglala Lakota, Pennington, Perkins, Stanley, Ziebach",
    ),
    "NE": _counties(
        MOUNTAIN,
        "Arthur, Banner, Box Butte, Chase, Cheyenne, Dawes, Deuel, Dundy, Garden, Grant,"
        "Hooker, Keith, Kimball, Morrill, Perkins, Scotts Bluff, Sheridan, Sioux",
    ),
    "KS": _counties(MOUNTAIN, "Greeley, Hamilton, Sherman, Wallace"),
    "ID": _counties(
        PACIFIC,
        "Benewah, Bonner, Boundary, Clearwater, Idaho, Kootenai, Latah, Lewis, Nez Perce,Shoshone",
    ),
    "OR": _counties(MOUNTAIN, "Malheur"),
    "AK": _counties("America/Adak", "Aleutians West"),
}


def _county_key(county: str) -> str:
    name = county.strip().casefold()
    for suffix in (" county", " parish", " borough", " census area"):
        name = name.removesuffix(suffix)
    return name


@cache
def zone_name(state: str, county: str | None = None) -> str:
    """The IANA zone of a jurisdiction; America/Chicago for a code not in the table (the
    policy refuses unknown states before this is reached)."""
    if county:
        found = COUNTY_ZONES.get(state, {}).get(_county_key(county))
        if found:
            return found
    return STATE_ZONES.get(state, CENTRAL)


@cache
def zone_of(state: str, county: str | None = None) -> ZoneInfo:
    return ZoneInfo(zone_name(state, county))
