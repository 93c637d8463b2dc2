"""Fixed vocabularies of the synthetic gaming data set (one mobile game's installs).

Countries, cities, devices, campaigns, ad networks and every per-level effect come from constants
and ``VOCAB_SEED`` only, never from the run's seed: a campaign id or a city means the same thing
in every partition and every run. ``get_vocab()`` builds the tables once per process.

Shares follow the seed's notebook (seeds_report §1.2): US 65%, JP 14%, GB 11%, DE 8%; iOS/Android
60/40 overall; Samsung 25% of all users.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

__all__ = ["GamingVocab", "get_vocab", "VOCAB_SEED", "PRICE_POINTS", "CLASSES", "CAMPAIGN_TYPES"]

VOCAB_SEED = 20240313  # the seed's pipeline run date; fixed, never the run's seed

GAME_TYPE = "puzzle"  # a single value in the real data (the seed drops it)
APP_IDS = {"ios": "id1482736451", "android": "com.puzzlestudio.tilematch"}  # duplicates platform

# country: (share of installs, P(ios), eCPM in USD per 1000 impressions, engagement effect, revenue effect)
COUNTRIES: dict[str, tuple[float, float, float, float, float]] = {
    "US": (0.650, 0.62, 13.0, 0.00, 0.15),
    "JP": (0.140, 0.68, 10.0, 0.10, 0.25),
    "GB": (0.110, 0.55, 9.0, -0.05, 0.00),
    "DE": (0.080, 0.40, 8.0, -0.05, -0.05),
    "CA": (0.007, 0.55, 8.5, 0.00, 0.00),
    "AU": (0.006, 0.58, 8.5, 0.00, 0.05),
    "FR": (0.004, 0.42, 6.0, -0.10, -0.20),
    "KR": (0.003, 0.30, 7.0, 0.15, 0.10),
}
N_CITIES = 60  # per country, Zipf(1.0): a high-cardinality column

# mobile_classification: (engagement effect, eCPM multiplier, revenue effect)
CLASSES: dict[str, tuple[float, float, float]] = {
    "low_end": (-0.25, 0.6, -0.45),
    "mid_range": (0.0, 0.9, -0.15),
    "high_end": (0.1, 1.1, 0.1),
    "flagship": (0.15, 1.3, 0.3),
}

# Android makes: share of Android installs and the class mix of their models (low, mid, high, flagship)
ANDROID_MAKES: dict[str, tuple[float, tuple[int, int, int, int]]] = {
    "Samsung": (0.625, (6, 8, 6, 4)),   # 25% of all users
    "Xiaomi": (0.09, (5, 5, 2, 1)),
    "Google": (0.08, (0, 2, 3, 3)),
    "Motorola": (0.06, (5, 4, 1, 0)),
    "OnePlus": (0.035, (0, 2, 3, 2)),
    "Oppo": (0.03, (3, 3, 1, 0)),
    "Sony": (0.025, (1, 2, 2, 1)),
    "LG": (0.02, (3, 2, 1, 0)),
    "Huawei": (0.02, (2, 3, 1, 1)),
    "TCL": (0.015, (4, 1, 0, 0)),
}
IOS_CLASSES = (2, 5, 6, 5)  # Apple models per class (older iPhones are "low_end")

# campaign_type: (share of paid installs, engagement effect, revenue effect); organic has no campaign
CAMPAIGN_TYPES: dict[str, tuple[float, float, float]] = {
    "cpi": (0.55, -0.10, -0.10),
    "cpa": (0.25, 0.10, 0.10),
    "roas": (0.20, 0.15, 0.45),
}
ORGANIC_SHARE = 0.25
ORGANIC_EFFECTS = (0.15, 0.05)  # engagement, revenue
N_CAMPAIGNS = 240  # per platform
N_AD_NETWORKS = 18

# In-app purchase price points (USD)
PRICE_POINTS = np.array([0.99, 1.99, 4.99, 9.99, 19.99, 49.99, 99.99])


@dataclass(frozen=True)
class GamingVocab:
    countries: pa.Array  # ISO-2, upper case
    country_cdf: np.ndarray
    country_ios: np.ndarray
    country_ecpm: np.ndarray
    country_eng: np.ndarray
    country_mu: np.ndarray
    cities: pa.Array  # N_CITIES per country, country-major
    city_cdf: np.ndarray
    classes: pa.Array
    class_eng: np.ndarray
    class_ecpm: np.ndarray
    class_mu: np.ndarray
    # devices: one table for both platforms; ios rows first
    device_make: pa.Array
    device_model: pa.Array
    device_class: np.ndarray  # index into classes
    ios_devices: np.ndarray  # indices of Apple devices
    ios_device_cdf: np.ndarray
    android_devices: np.ndarray
    android_device_cdf: np.ndarray
    # campaigns: N_CAMPAIGNS per platform (ios block, then android)
    campaign_ids: pa.Array
    campaign_type: np.ndarray  # index into CAMPAIGN_TYPES
    campaign_network: np.ndarray  # index into ad_networks
    campaign_eng: np.ndarray
    campaign_mu: np.ndarray  # the campaign's own revenue effect (its type's effect added apart)
    campaign_cdf: np.ndarray  # Zipf within a platform block
    campaign_types: pa.Array
    type_eng: np.ndarray
    type_mu: np.ndarray
    ad_networks: pa.Array


def _hex_ids(prefix: str, n: int, length: int) -> list[str]:
    return [prefix + hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()[:length] for i in range(n)]


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return np.cumsum(w) / w.sum()


def _cdf(weights: np.ndarray) -> np.ndarray:
    c = np.cumsum(weights, dtype=np.float64)
    return c / c[-1]


def _devices(rng: np.random.Generator) -> dict[str, object]:
    makes, models, classes = [], [], []
    ios_w, and_w = [], []
    gens = iter(range(8, 100))
    for cls, count in enumerate(IOS_CLASSES):
        for j in range(count):
            makes.append("Apple")
            models.append(f"iPhone{next(gens)},{j % 4 + 1}")
            classes.append(cls)
            ios_w.append(rng.gamma(2.0) * (1.5 if cls >= 2 else 1.0))
    n_ios = len(makes)
    for make, (share, mix) in ANDROID_MAKES.items():
        k = 0
        w_make = []
        for cls, count in enumerate(mix):
            for _ in range(count):
                k += 1
                makes.append(make)
                models.append(f"{make[:3].upper()}-{'LMHF'[cls]}{k:02d}{rng.integers(10, 99)}")
                classes.append(cls)
                w_make.append(rng.gamma(1.5))
        w = np.array(w_make)
        and_w.extend(share * w / w.sum())
    return {
        "device_make": pa.array(makes), "device_model": pa.array(models),
        "device_class": np.array(classes, dtype=np.int64),
        "ios_devices": np.arange(n_ios), "ios_device_cdf": _cdf(np.array(ios_w)),
        "android_devices": np.arange(n_ios, len(makes)), "android_device_cdf": _cdf(np.array(and_w)),
    }


@lru_cache(maxsize=1)
def get_vocab() -> GamingVocab:
    """Every fixed table, built once per process from ``VOCAB_SEED``."""
    rng = np.random.default_rng(VOCAB_SEED)
    names = list(COUNTRIES)
    cols = np.array([COUNTRIES[c] for c in names])
    cities = [f"{c.lower()}_city_{k:02d}" for c in names for k in range(N_CITIES)]
    types = list(CAMPAIGN_TYPES)
    type_share = np.array([CAMPAIGN_TYPES[t][0] for t in types])
    n_camp = 2 * N_CAMPAIGNS
    campaign_type = rng.choice(len(types), size=n_camp, p=type_share / type_share.sum())
    return GamingVocab(
        countries=pa.array(names), country_cdf=_cdf(cols[:, 0]), country_ios=cols[:, 1], country_ecpm=cols[:, 2],
        country_eng=cols[:, 3], country_mu=cols[:, 4],
        cities=pa.array(cities), city_cdf=_zipf_cdf(N_CITIES, 1.0),
        classes=pa.array(list(CLASSES)), class_eng=np.array([v[0] for v in CLASSES.values()]),
        class_ecpm=np.array([v[1] for v in CLASSES.values()]), class_mu=np.array([v[2] for v in CLASSES.values()]),
        **_devices(rng),
        campaign_ids=pa.array(_hex_ids("cmp_", n_camp, 8)),
        campaign_type=campaign_type,
        campaign_network=rng.integers(0, N_AD_NETWORKS, size=n_camp),
        campaign_eng=rng.normal(0.0, 0.25, size=n_camp),
        campaign_mu=rng.normal(0.0, 0.35, size=n_camp),
        campaign_cdf=_zipf_cdf(N_CAMPAIGNS, 1.05),
        campaign_types=pa.array(types), type_eng=np.array([CAMPAIGN_TYPES[t][1] for t in types]),
        type_mu=np.array([CAMPAIGN_TYPES[t][2] for t in types]),
        ad_networks=pa.array([f"net_{i:02d}" for i in range(1, N_AD_NETWORKS + 1)]),
    )
