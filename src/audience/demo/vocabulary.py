"""Word lists for the sample customer 360: names, places, streets, products.

Everything here is plain data. The generator binds these lists as query parameters and picks
from them by index inside DuckDB, so no row is ever built in Python.

Contact details are realistic in shape but cannot reach anyone: e-mail addresses use the domains
reserved for documentation (RFC 2606, ``example.com`` and friends) and telephone numbers use the
555-0100 to 555-0199 lines reserved for fiction in every US area code. Sample audiences get sent
to real destinations during demos, so they must never match a real person.
"""

from __future__ import annotations

from typing import NamedTuple

FEMALE_NAMES: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Lisa", "Nancy", "Sandra", "Ashley", "Emily", "Michelle", "Amanda", "Melissa",
    "Stephanie", "Rebecca", "Laura", "Emma", "Olivia", "Sophia", "Isabella", "Mia", "Ava",
    "Charlotte", "Harper", "Camila", "Sofia", "Valentina", "Lucia", "Maria", "Guadalupe",
    "Ximena", "Mei", "Yuki", "Priya", "Ananya", "Aaliyah", "Imani", "Keisha", "Fatima", "Aisha",
    "Leilani", "Chloe", "Grace", "Zoe", "Hannah",
)  # fmt: skip

MALE_NAMES: tuple[str, ...] = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Steven", "Andrew", "Joshua",
    "Kevin", "Brian", "Ryan", "Jacob", "Ethan", "Liam", "Noah", "Oliver", "Elijah", "Lucas",
    "Mateo", "Santiago", "Diego", "Carlos", "Luis", "Jose", "Alejandro", "Wei", "Hiroshi", "Minh",
    "Arjun", "Rahul", "Omar", "Ahmed", "Malik", "DeShawn", "Jamal", "Kai", "Finn", "Sean",
    "Connor", "Samuel",
)  # fmt: skip

SURNAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner",
    "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales",
    "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey",
    "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Chen", "Wang", "Tanaka", "O'Brien", "Smith-Jones",
)  # fmt: skip


class City(NamedTuple):
    """A real US city: its USPS state code, a plausible ZIP range and its main area code."""

    name: str
    state: str
    zip_low: int
    zip_high: int
    area_code: str
    weight: int  # relative share of customers, roughly by metro population


CITIES: tuple[City, ...] = (
    City("New York", "NY", 10001, 10128, "212", 20),
    City("Los Angeles", "CA", 90001, 90089, "213", 14),
    City("Chicago", "IL", 60601, 60661, "312", 10),
    City("Houston", "TX", 77002, 77099, "713", 8),
    City("Phoenix", "AZ", 85003, 85054, "602", 6),
    City("Philadelphia", "PA", 19102, 19154, "215", 6),
    City("San Antonio", "TX", 78201, 78266, "210", 4),
    City("San Diego", "CA", 92101, 92139, "619", 4),
    City("Dallas", "TX", 75201, 75254, "214", 7),
    City("San Jose", "CA", 95110, 95139, "408", 3),
    City("Austin", "TX", 78701, 78759, "512", 4),
    City("Jacksonville", "FL", 32202, 32258, "904", 2),
    City("Fort Worth", "TX", 76102, 76140, "817", 2),
    City("Columbus", "OH", 43201, 43235, "614", 3),
    City("Charlotte", "NC", 28202, 28278, "704", 3),
    City("Indianapolis", "IN", 46201, 46260, "317", 3),
    City("San Francisco", "CA", 94102, 94134, "415", 5),
    City("Seattle", "WA", 98101, 98199, "206", 5),
    City("Denver", "CO", 80202, 80239, "303", 4),
    City("Washington", "DC", 20001, 20020, "202", 5),
    City("Nashville", "TN", 37201, 37221, "615", 3),
    City("Oklahoma City", "OK", 73102, 73162, "405", 2),
    City("El Paso", "TX", 79901, 79938, "915", 1),
    City("Boston", "MA", 2108, 2136, "617", 5),
    City("Portland", "OR", 97201, 97236, "503", 3),
    City("Las Vegas", "NV", 89101, 89149, "702", 3),
    City("Detroit", "MI", 48201, 48239, "313", 4),
    City("Memphis", "TN", 38103, 38141, "901", 2),
    City("Louisville", "KY", 40202, 40272, "502", 2),
    City("Baltimore", "MD", 21201, 21239, "410", 3),
    City("Milwaukee", "WI", 53202, 53233, "414", 2),
    City("Albuquerque", "NM", 87102, 87123, "505", 1),
    City("Tucson", "AZ", 85701, 85750, "520", 1),
    City("Fresno", "CA", 93701, 93728, "559", 1),
    City("Sacramento", "CA", 95811, 95838, "916", 2),
    City("Kansas City", "MO", 64105, 64158, "816", 2),
    City("Atlanta", "GA", 30303, 30350, "404", 6),
    City("Miami", "FL", 33125, 33190, "305", 6),
    City("Minneapolis", "MN", 55401, 55419, "612", 4),
    City("Omaha", "NE", 68102, 68164, "402", 1),
    City("Raleigh", "NC", 27601, 27617, "919", 2),
    City("Cleveland", "OH", 44102, 44135, "216", 2),
    City("Tampa", "FL", 33602, 33629, "813", 3),
    City("New Orleans", "LA", 70112, 70131, "504", 2),
    City("Pittsburgh", "PA", 15201, 15235, "412", 2),
    City("St. Louis", "MO", 63101, 63139, "314", 3),
    City("Salt Lake City", "UT", 84101, 84121, "801", 2),
    City("Honolulu", "HI", 96813, 96826, "808", 1),
    City("Anchorage", "AK", 99501, 99518, "907", 1),
    City("Boise", "ID", 83702, 83716, "208", 1),
    City("Providence", "RI", 2903, 2909, "401", 1),
    City("Burlington", "VT", 5401, 5408, "802", 1),
)

STREET_NAMES: tuple[str, ...] = (
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park",
    "Sunset", "Lincoln", "Jefferson", "Madison", "Franklin", "Highland", "Church", "River",
    "Spring", "Meadow", "Ridge", "Forest", "Willow", "Chestnut", "Walnut", "Valley", "Mill",
    "Lakeview", "Jackson", "Adams", "Cherry", "Sycamore", "Magnolia", "Dogwood", "Hickory",
    "2nd", "3rd", "5th", "7th", "12th",
)  # fmt: skip

STREET_SUFFIXES: tuple[str, ...] = (
    "St",
    "St",
    "St",
    "Ave",
    "Ave",
    "Rd",
    "Dr",
    "Ln",
    "Blvd",
    "Way",
    "Ct",
    "Pl",
    "Ter",
)  # fmt: skip  (repeats weight the common suffixes)

# (domain, weight): documentation-reserved domains, see the module docstring.
EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("example.com", 40),
    ("example.net", 25),
    ("example.org", 20),
    ("mail.example.com", 10),
    ("inbox.example.org", 5),
)

# (category, typical unit price in USD, weight in orders)
PRODUCT_CATEGORIES: tuple[tuple[str, float, int], ...] = (
    ("Shoes", 85.0, 18),
    ("Apparel", 45.0, 28),
    ("Accessories", 30.0, 12),
    ("Outerwear", 140.0, 8),
    ("Bags", 75.0, 8),
    ("Beauty", 25.0, 12),
    ("Home", 40.0, 8),
    ("Kids", 30.0, 6),
)

# (brand, weight): invented names, so no sample reads as an endorsement.
BRANDS: tuple[tuple[str, int], ...] = (
    ("Northwind", 16),
    ("Harbor & Pine", 14),
    ("Lumen", 12),
    ("Cobalt Row", 11),
    ("Tidewater", 10),
    ("Kestrel", 9),
    ("Marlowe", 8),
    ("Alder & Co.", 8),
    ("Bramble", 7),
    ("Summit Supply", 5),
)

# order_quantity 1..6 and how often each occurs
QUANTITY_WEIGHTS: tuple[int, ...] = (55, 22, 10, 6, 4, 3)


def email_key(name: str) -> str:
    """The lower-case letters of a name, as they appear in an e-mail address (O'Brien → obrien)."""
    return "".join(ch for ch in name.lower() if "a" <= ch <= "z")


def weighted_indexes(weights: tuple[int, ...] | list[int]) -> list[int]:
    """1-based indexes repeated by weight: a uniform pick from this list is a weighted pick."""
    return [index for index, weight in enumerate(weights, start=1) for _ in range(weight)]
