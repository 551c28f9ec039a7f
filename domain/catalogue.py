"""The commodity catalogue: the goods sanctions are commonly aimed at, with HS codes."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from domain.errors import InvalidInput


@dataclass(frozen=True)
class Commodity:
    """A sanctionable commodity: a URL-safe slug, its Harmonized System code and name."""

    slug: str
    hs_code: str
    name: str


CATALOGUE: tuple[Commodity, ...] = (
    Commodity("potash", "3104", "Mineral or chemical fertilisers, potassic (potash)"),
    Commodity("fertilizers", "31", "Fertilisers"),
    Commodity("nitrogen-fertilizers", "3102", "Mineral or chemical fertilisers, nitrogenous"),
    Commodity("crude-oil", "2709", "Petroleum oils, crude"),
    Commodity("refined-petroleum", "2710", "Petroleum oils, refined, and products"),
    Commodity("natural-gas", "2711", "Petroleum gases, including natural gas and LNG"),
    Commodity("coal", "2701", "Coal; briquettes and solid fuels made from coal"),
    Commodity("iron-ore", "2601", "Iron ores and concentrates"),
    Commodity("iron-steel", "72", "Iron and steel"),
    Commodity("steel-products", "73", "Articles of iron or steel"),
    Commodity("aluminium", "76", "Aluminium and articles thereof"),
    Commodity("copper", "74", "Copper and articles thereof"),
    Commodity("nickel", "75", "Nickel and articles thereof"),
    Commodity("gold", "7108", "Gold, unwrought, semi-manufactured or powder"),
    Commodity("silver", "7106", "Silver, unwrought, semi-manufactured or powder"),
    Commodity("platinum", "7110", "Platinum and platinum-group metals"),
    Commodity("diamonds", "7102", "Diamonds, not mounted or set"),
    Commodity("timber", "44", "Wood and articles of wood"),
    Commodity("tobacco", "24", "Tobacco and manufactured tobacco substitutes"),
    Commodity("cement", "2523", "Portland cement and hydraulic cements"),
    Commodity("rubber", "40", "Rubber and articles thereof"),
    Commodity("wheat", "1001", "Wheat and meslin"),
    Commodity("seafood", "03", "Fish and crustaceans, molluscs"),
    Commodity("vodka", "2208", "Spirits, liqueurs and other spirituous beverages"),
    Commodity("cotton", "52", "Cotton"),
    Commodity("uranium", "2844", "Radioactive elements and isotopes, including uranium"),
    Commodity("arms", "93", "Arms and ammunition"),
    Commodity("luxury-goods", "7113", "Articles of jewellery and luxury goods"),
    Commodity("semiconductors", "8542", "Electronic integrated circuits"),
    Commodity("aviation", "88", "Aircraft, spacecraft and parts (including airlines)"),
    Commodity("vehicles", "87", "Vehicles other than railway or tramway rolling stock"),
    Commodity("textiles", "6302", "Bed, table, toilet and kitchen linen (textiles)"),
)

_BY_SLUG = {commodity.slug: commodity for commodity in CATALOGUE}


def find_commodity(slug: str) -> Commodity:
    """The catalogue entry for `slug`, or InvalidInput naming close matches."""
    normalised = slug.strip().lower()
    try:
        return _BY_SLUG[normalised]
    except KeyError:
        pass
    matches = difflib.get_close_matches(normalised, _BY_SLUG, n=3, cutoff=0.5)
    hint = (
        f"; did you mean {', '.join(repr(m) for m in matches)}?"
        if matches
        else "; GET /v1/commodities lists the catalogue"
    )
    raise InvalidInput("commodity", f"unknown commodity {slug!r}{hint}")
