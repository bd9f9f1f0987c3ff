"""Synthetic OKLA car-marketplace data shared by the example training scripts and the serving tests.

Not a script: `train_pricing.py`, `train_pricing_mlp.py`, `train_lead_scoring.py` and
`serving/tests/reference.py` import it. Everything is generated from a fixed seed, so the same call
returns the same rows on every machine.

Pricing features (float32, this column order; categorical columns are integer codes):

    0 make          0..9, see MAKES (ordered roughly by brand premium)
    1 year          model year, 2005..2025
    2 mileage_km    odometer in kilometres
    3 engine_l      engine displacement in litres (0.0 for electric cars)
    4 fuel          0..3, see FUELS
    5 body          0..4, see BODIES
    6 region        0..5, see REGIONS
    7 days_listed   days the listing has been online

Target: price in USD.

Lead-scoring features (float32, this column order):

    0 price_vs_market    asking price / estimated market price (1.0 = at market)
    1 photos             number of photos on the listing
    2 response_minutes   seller's median reply time in minutes
    3 days_listed        days the listing has been online
    4 description_words  words in the listing description
    5 verified_seller    1.0 if the seller's identity is verified, else 0.0

Target: 1 if the lead (a buyer's enquiry) turned into a test drive or sale, else 0.
"""

import numpy as np

MAKES = ["Dacia", "Kia", "Hyundai", "Toyota", "Ford", "Volkswagen", "Mazda", "Audi", "BMW", "Mercedes-Benz"]
FUELS = ["petrol", "diesel", "hybrid", "electric"]
BODIES = ["hatchback", "sedan", "wagon", "suv", "pickup"]
REGIONS = ["north", "south", "east", "west", "capital", "islands"]

PRICING_FEATURES = [
    "make",
    "year",
    "mileage_km",
    "engine_l",
    "fuel",
    "body",
    "region",
    "days_listed",
]
LEAD_FEATURES = [
    "price_vs_market",
    "photos",
    "response_minutes",
    "days_listed",
    "description_words",
    "verified_seller",
]

# Multipliers on the base price, indexed like the name lists above.
_MAKE_PREMIUM = np.array([0.70, 0.85, 0.88, 1.00, 0.95, 1.05, 1.02, 1.45, 1.55, 1.65])
_FUEL_PREMIUM = np.array([1.00, 1.04, 1.12, 1.25])
_BODY_PREMIUM = np.array([0.90, 1.00, 1.03, 1.18, 1.22])
_REGION_PREMIUM = np.array([0.97, 1.02, 0.95, 1.00, 1.08, 0.92])


def pricing_features(rows, seed):
    """Draws `rows` car listings; returns float32 features of shape [rows, 8]."""
    rng = np.random.default_rng(seed)
    make = rng.integers(0, len(MAKES), rows)
    year = rng.integers(2005, 2026, rows)
    age = 2026 - year
    # Older cars have driven more: about 15,000 km a year, with a long tail.
    mileage = rng.gamma(3.0, 5_000.0, rows) * np.maximum(age, 0.5)
    fuel = rng.choice(len(FUELS), rows, p=[0.5, 0.3, 0.12, 0.08])
    engine = rng.choice([1.0, 1.2, 1.4, 1.6, 2.0, 2.5, 3.0], rows)
    engine = np.where(fuel == 3, 0.0, engine)
    body = rng.integers(0, len(BODIES), rows)
    region = rng.integers(0, len(REGIONS), rows)
    days_listed = rng.gamma(1.5, 20.0, rows)
    return np.column_stack([make, year, mileage, engine, fuel, body, region, days_listed]).astype(
        np.float32
    )


def pricing_target(features, seed):
    """Price in USD for the listings in `features`, with market noise; float32 [rows]."""
    rng = np.random.default_rng(seed + 1)
    make, year, mileage, engine, fuel, body, region, days = features.T.astype(np.float64)
    i = lambda column: column.astype(np.int64)  # noqa: E731
    age = 2026 - year
    base = 32_000.0 * np.exp(-0.11 * age) * np.exp(-mileage / 400_000.0)
    base *= _MAKE_PREMIUM[i(make)] * _FUEL_PREMIUM[i(fuel)] * _BODY_PREMIUM[i(body)]
    base *= _REGION_PREMIUM[i(region)]
    base *= 1.0 + 0.08 * np.clip(engine - 1.6, -0.6, 1.4)
    # Listings that sit for long are overpriced for what they are, then get cut.
    base *= 1.0 - 0.0015 * np.minimum(days, 120.0)
    price = base * rng.lognormal(0.0, 0.06, len(base)) + 1_500.0
    return price.astype(np.float32)


def pricing_dataset(rows=4000, seed=7):
    """(features float32 [rows, 8], price float32 [rows]) for training the pricing models."""
    features = pricing_features(rows, seed)
    return features, pricing_target(features, seed)


def lead_features(rows, seed):
    """Draws `rows` buyer enquiries; returns float32 features of shape [rows, 6]."""
    rng = np.random.default_rng(seed)
    price_vs_market = rng.lognormal(0.0, 0.12, rows)
    photos = rng.integers(0, 31, rows)
    response_minutes = rng.gamma(1.2, 90.0, rows)
    days_listed = rng.gamma(1.5, 20.0, rows)
    description_words = rng.gamma(2.0, 60.0, rows).round()
    verified_seller = (rng.uniform(0, 1, rows) < 0.6).astype(np.float64)
    return np.column_stack(
        [price_vs_market, photos, response_minutes, days_listed, description_words, verified_seller]
    ).astype(np.float32)


def lead_target(features, seed):
    """Whether each lead converted (int64 0/1), drawn from a logistic model of the features."""
    rng = np.random.default_rng(seed + 1)
    price_vs_market, photos, response, days, words, verified = features.T.astype(np.float64)
    logit = (
        -0.4
        - 6.0 * (price_vs_market - 1.0)
        + 0.07 * np.minimum(photos, 20)
        - 0.006 * response
        - 0.012 * days
        + 0.002 * np.minimum(words, 300)
        + 0.7 * verified
    )
    converted = rng.uniform(0, 1, len(logit)) < 1.0 / (1.0 + np.exp(-logit))
    return converted.astype(np.int64)


def lead_dataset(rows=4000, seed=11):
    """(features float32 [rows, 6], converted int64 [rows]) for training the lead-scoring models."""
    features = lead_features(rows, seed)
    return features, lead_target(features, seed)
