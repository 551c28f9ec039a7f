"""The commodity catalogue: the goods sanctions are commonly aimed at, with HS codes."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from domain.errors import InvalidInput


@dataclass(frozen=True)
class Commodity:
    """A sanctionable commodity: a URL-safe slug, its Harmonized System code and name, and
    the HS headings and subheadings it covers (the code's own first)."""

    slug: str
    hs_code: str
    name: str
    covers: tuple[str, ...] = ()

    @property
    def hs_prefixes(self) -> tuple[str, ...]:
        """Every HS prefix a shipment's code may start with to be this commodity."""
        return (self.hs_code, *(code for code in self.covers if code != self.hs_code))


CATALOGUE: tuple[Commodity, ...] = (
    Commodity(
        "potash",
        "3104",
        "Mineral or chemical fertilisers, potassic (potash)",
        ("310420", "310430", "310490"),
    ),
    Commodity("fertilizers", "31", "Fertilisers", ("3101", "3103", "3105")),
    Commodity(
        "nitrogen-fertilizers",
        "3102",
        "Mineral or chemical fertilisers, nitrogenous",
        ("310210", "310221", "310230", "310240", "310250", "310260", "310280", "310290"),
    ),
    Commodity("crude-oil", "2709", "Petroleum oils, crude", ("270900",)),
    Commodity(
        "refined-petroleum",
        "2710",
        "Petroleum oils, refined, and products",
        ("271012", "271019", "271020"),
    ),
    Commodity(
        "natural-gas",
        "2711",
        "Petroleum gases, including natural gas and LNG",
        ("271111", "271121"),
    ),
    Commodity("coal", "2701", "Coal; briquettes and solid fuels made from coal", ("2702", "2704")),
    Commodity("iron-ore", "2601", "Iron ores and concentrates", ("260111", "260112")),
    Commodity("iron-steel", "72", "Iron and steel", ("7206", "7207", "7208", "7214")),
    Commodity("steel-products", "73", "Articles of iron or steel", ("7304", "7308")),
    Commodity("aluminium", "76", "Aluminium and articles thereof", ("7601", "7604", "7606")),
    Commodity("copper", "74", "Copper and articles thereof", ("7403", "7408")),
    Commodity("nickel", "75", "Nickel and articles thereof", ("7502",)),
    Commodity(
        "gold",
        "7108",
        "Gold, unwrought, semi-manufactured or powder",
        ("710812", "710813"),
    ),
    Commodity("silver", "7106", "Silver, unwrought, semi-manufactured or powder"),
    Commodity("platinum", "7110", "Platinum and platinum-group metals", ("711011", "711021")),
    Commodity("diamonds", "7102", "Diamonds, not mounted or set", ("710210", "710221", "710231")),
    Commodity("timber", "44", "Wood and articles of wood", ("4403", "4407", "4412")),
    Commodity("tobacco", "24", "Tobacco and manufactured tobacco substitutes", ("2401", "2402")),
    Commodity("cement", "2523", "Portland cement and hydraulic cements", ("252329",)),
    Commodity("rubber", "40", "Rubber and articles thereof", ("4001", "4011")),
    Commodity("wheat", "1001", "Wheat and meslin", ("100119", "100199")),
    Commodity("seafood", "03", "Fish and crustaceans, molluscs", ("0302", "0303", "0306")),
    Commodity("vodka", "2208", "Spirits, liqueurs and other spirituous beverages", ("220860",)),
    Commodity("cotton", "52", "Cotton", ("5201",)),
    Commodity(
        "uranium",
        "2844",
        "Radioactive elements and isotopes, including uranium",
        ("284420", "2612"),
    ),
    Commodity("arms", "93", "Arms and ammunition", ("9301", "9306")),
    Commodity(
        "luxury-goods",
        "7113",
        "Articles of jewellery and luxury goods",
        ("7114", "7116", "9101"),
    ),
    Commodity("semiconductors", "8542", "Electronic integrated circuits", ("8541",)),
    Commodity(
        "aviation",
        "88",
        "Aircraft, spacecraft and parts (including airlines)",
        ("8802", "8803", "8807"),
    ),
    Commodity(
        "vehicles", "87", "Vehicles other than railway or tramway rolling stock", ("8703", "8704")
    ),
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


HS_CODE = re.compile(r"[0-9](?:\.?[0-9]){1,9}")
"""A Harmonized System code as shipping papers write it: 2 to 10 digits, a dot allowed
between any two of them (`3104`, `3104.20`, `3104.20.50`)."""
_BY_PREFIX = {prefix: commodity for commodity in CATALOGUE for prefix in commodity.hs_prefixes}


def commodity_for_hs(code: str) -> Commodity:
    """The catalogue commodity with the longest HS prefix of `code`, or InvalidInput
    (field `hs`) when the code is malformed or no commodity covers it."""
    text = code.strip()
    if not HS_CODE.fullmatch(text):
        raise InvalidInput(
            "hs",
            f"{code!r} is not an HS code: give 2 to 10 digits, dots allowed between them "
            "(e.g. 3104.20)",
        )
    digits = text.replace(".", "")
    for length in range(len(digits), 1, -1):
        commodity = _BY_PREFIX.get(digits[:length])
        if commodity is not None:
            return commodity
    raise InvalidInput(
        "hs",
        f"no commodity in the catalogue covers HS {text} (GET /v1/commodities lists each "
        "commodity's HS headings and subheadings)",
    )
