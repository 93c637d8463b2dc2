"""Fixed vocabularies of the synthetic Smadex-shaped data set.

Every pool here (bundle SHA-1s, the category tree, countries, devices, effects) is derived from
constants and fixed seeds only, never from the run's seed: a partition regenerated alone, or by a
later run with another seed, sees exactly the same keys, so map keys and categorical levels mean
the same thing everywhere. ``get_vocab()`` builds it once per process and caches it.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

__all__ = ["Vocab", "get_vocab", "zipf_cdf", "draw_from_cdf", "title_key"]

VOCAB_SEED = 20251001  # fixed: vocabularies never depend on the run's seed

N_USER_BUNDLES = 5000  # bundle ids that appear as map keys / list items on the user side
N_ADV_BUNDLES = 515  # advertised apps (``advertiser_bundle``), a subset of the user-side pool
N_ADVERTISERS = 200  # keys of ``rev_by_adv``

ACTIONS = ("click", "install", "open", "purchase")
FORMATS = ("b", "i", "r")  # banner / interstitial / rewarded
HOURS = tuple(f"{h:02d}" for h in range(24))
LANGUAGES = ("en", "es", "pt", "hi", "id", "ru", "de", "fr", "tr", "ar", "ja", "vi", "th", "it",
             "ko", "zh", "pl", "nl", "fa", "uk")

# advertiser_category -> subcategory -> bottom taxonomy levels (22 / 56 / 91 like the real data).
CATEGORY_TREE: dict[str, dict[str, tuple[str, ...]]] = {
    "games": {
        "games/adventure": ("hidden object", "open world"),
        "games/action": ("fps / 3ps", "battle royale", "runner"),
        "games/hypercasual": ("hyper casual stack", "io games"),
        "games/puzzle": ("match swap", "match pair", "block puzzle"),
        "games/strategy": ("4x strategy", "tower defense"),
        "games/role playing": ("idle rpg", "mmorpg"),
        "games/simulation": ("farming sim", "city builder", "life sim"),
        "games/casual": ("merge", "bubble shooter"),
        "games/arcade": ("arcade classic", "pinball"),
        "games/card": ("solitaire", "card battler"),
        "games/board": ("mahjong", "ludo"),
    },
    "game": {
        "puzzle": ("match 3", "jigsaw", "sudoku"),
        "casino": ("slots", "social casino"),
        "skill game": ("skill cash games", "trivia"),
        "casual": ("coloring", "word"),
        "arcade": ("racing arcade",),
        "strategy": ("moba",),
    },
    "sport betting": {"sports betting": ("sportsbook", "horse racing"), "fantasy sports": ("fantasy football",)},
    "application": {"tools": ("vpn", "cleaner"), "communication": ("keyboard",),
                    "personalization": ("wallpaper", "launcher")},
    "real money casino": {"online casino": ("roulette", "blackjack"), "real money slots": ("real money slots",),
                          "poker": ("poker",)},
    "finance": {"banking": ("neobank",), "investing": ("stock trading",),
                "cryptocurrency exchange": ("cryptocurrency", "crypto wallet"), "payments": ("buy now pay later",),
                "loans": ("personal loans",)},
    "social networking": {"dating": ("dating app",), "messaging": ("messenger",), "social": ("short video",)},
    "lifestyle": {"lifestyle": ("horoscope",), "beauty": ("beauty",)},
    "food & drink": {"food delivery": ("food delivery",), "recipes": ("recipes", "grocery")},
    "photo & video": {"video players & editors": ("video editor",), "photography": ("photo editor",)},
    "shopping": {"e-commerce": ("fashion retail",), "marketplace": ("marketplace",), "deals": ("deals & coupons",)},
    "health & fitness": {"fitness": ("fitness tracker",), "health": ("meditation", "period tracker")},
    "travel": {"travel & local": ("hotel booking", "flights"), "ride hailing": ("ride hailing",)},
    "productivity": {"productivity": ("note taking", "pdf tools")},
    "entertainment": {"streaming": ("video streaming", "live streaming"),
                      "music & audio": ("music streaming", "podcasts")},
    "utilities": {"utilities": ("flashlight", "qr scanner")},
    "education": {"education": ("language learning", "exam prep")},
    "sports": {"sports news": ("live scores",)},
    "lottery": {"lottery": ("lottery tickets", "scratch cards", "bingo")},
    "books": {"books & reference": ("ebooks", "comics")},
    "navigation": {"maps & navigation": ("maps",)},
    "unknown": {"unknown": ("keno",)},
}
# Share of advertised apps per category (games-heavy, like the datathon's buyers).
CATEGORY_WEIGHTS: dict[str, float] = {
    "games": 0.30, "game": 0.10, "sport betting": 0.04, "application": 0.05, "real money casino": 0.05,
    "finance": 0.05, "social networking": 0.04, "lifestyle": 0.03, "food & drink": 0.03, "photo & video": 0.03,
    "shopping": 0.05, "health & fitness": 0.02, "travel": 0.02, "productivity": 0.03, "entertainment": 0.04,
    "utilities": 0.04, "education": 0.02, "sports": 0.02, "lottery": 0.02, "books": 0.01, "navigation": 0.01,
    "unknown": 0.02,
}

_HEAVY_COUNTRIES = ("us", "in", "br", "mx", "id", "ru", "de", "tr", "ph", "vn", "th", "gb", "fr", "jp", "eg",
                    "pk", "sa", "ng", "co", "ar", "it", "es", "kr", "ca", "my", "bd", "pe", "cl", "za", "ua")
_OTHER_COUNTRIES = (
    "ad ae af ag ai al am ao as at au aw ax az ba bb be bf bg bh bi bj bl bm bn bo bq bs bt bw by bz cd cf cg ch "
    "ci ck cm cn cr cu cv cw cy cz dj dk dm do dz ec ee eh er et fi fj fk fm fo ga gd ge gf gg gh gi gl gm gn gp "
    "gq gr gt gu gw gy hk hn hr ht hu ie il im iq ir is je jm jo ke kg kh ki km kn kp kw ky kz la lb lc li lk lr "
    "ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mz na nc ne ni nl no np nr nu nz "
    "om pa pf pg pl pm pr ps pt pw py qa re ro rs rw sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz "
    "tc td tg tj tk tl tm tn to tt tv tw tz ug uy uz va vc ve vg vi vu wf ws ye yt zm zw"
).split()
_COUNTRY_LANG = {"us": "en", "gb": "en", "ca": "en", "in": "hi", "br": "pt", "mx": "es", "id": "id", "ru": "ru",
                 "de": "de", "tr": "tr", "ph": "en", "vn": "vi", "th": "th", "fr": "fr", "jp": "ja", "eg": "ar",
                 "pk": "en", "sa": "ar", "ng": "en", "co": "es", "ar": "es", "it": "it", "es": "es", "kr": "ko",
                 "my": "en", "pe": "es", "cl": "es", "ua": "uk", "pl": "pl", "nl": "nl", "cn": "zh", "ir": "fa"}
_CARRIERS = ("vodafone", "t-mobile", "verizon", "at&t", "orange", "telcel", "claro", "movistar", "airtel", "jio",
             "vivo", "tim", "telkomsel", "indosat", "mts", "beeline", "megafon", "turkcell", "globe", "smart",
             "viettel", "ais", "true move", "ee", "o2", "three", "free", "bouygues", "docomo", "softbank", "etisalat",
             "stc", "mtn", "glo", "tigo", "entel", "kyivstar", "jazz", "telenor", "digi", "maxis", "celcom")
_ANDROID_MAKES = (("samsung", "sm-", 0.34), ("xiaomi", "redmi ", 0.16), ("generic", "android ", 0.07),
                  ("motorola", "moto g", 0.07), ("infinix", "infinix x", 0.05), ("oppo", "cph", 0.06),
                  ("vivo", "v2", 0.06), ("realme", "rmx", 0.05), ("tecno", "tecno ", 0.04), ("huawei", "huawei ", 0.03),
                  ("google", "pixel ", 0.03), ("oneplus", "oneplus ", 0.02), ("nokia", "nokia ", 0.01),
                  ("itel", "itel ", 0.01))
_IPHONES = (("iphone 11", 2019, 699), ("iphone 12", 2020, 799), ("iphone 12 pro max", 2020, 1099),
            ("iphone 13", 2021, 799), ("iphone 13 pro max", 2021, 1099), ("iphone se", 2022, 429),
            ("iphone 14", 2022, 799), ("iphone 14 pro", 2022, 999), ("iphone 15", 2023, 799),
            ("iphone 15 plus", 2023, 899), ("iphone 15 pro max", 2023, 1199), ("iphone 16", 2024, 799),
            ("iphone 16 pro", 2024, 999), ("iphone 16 pro max", 2024, 1199), ("iphone 17", 2025, 799),
            ("ipad", 2022, 449), ("ipad pro", 2024, 999))
_IOS_VERSIONS = ("16.7.10", "17.6.1", "17.7.2", "18.3.2", "18.4.1", "18.5.0", "18.6.2", "26.0.0", "26.0.1")
_ANDROID_VERSIONS = ("9.0.0", "10.0.0", "11.0.0", "12.0.0", "13.0.0", "14.0.0", "15.0.0", "16.0.0")
_MONTHS = tuple(calendar.month_name[m].lower() for m in range(1, 13))

# Label-model effects keyed by category (buyer logit, lognormal mu); everything else is 0.
CATEGORY_LOGIT = {"real money casino": 0.6, "games": 0.45, "sport betting": 0.5, "game": 0.3, "lottery": 0.2,
                  "social networking": 0.1, "finance": -0.2, "shopping": -0.3, "utilities": -0.6,
                  "productivity": -0.4, "navigation": -0.6, "books": -0.3, "unknown": -0.3}
CATEGORY_MU = {"real money casino": 0.3, "sport betting": 0.25, "games": 0.15, "game": 0.05, "lottery": 0.0,
               "finance": 0.1, "social networking": -0.1, "shopping": -0.15, "utilities": -0.3,
               "productivity": -0.2, "books": -0.25, "education": -0.2, "unknown": -0.1}


def title_key(name: str) -> str:
    """Taxonomy names as map keys: each word capitalised, as seen in the real maps ('Bubble Shooter')."""
    return " ".join(w[:1].upper() + w[1:] for w in name.split(" "))


def zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """Cumulative Zipf weights over ranks 1..n: a few keys dominate, like app and country popularity."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


def draw_from_cdf(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """Vectorised categorical draw (faster than Generator.choice with p=, and stable across numpy)."""
    return np.searchsorted(cdf, rng.random(size), side="right").clip(0, len(cdf) - 1).astype(np.int64)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _greedy_subset(rng: np.random.Generator, weights: np.ndarray, target: float) -> np.ndarray:
    """Pick items in random order until their summed weight reaches ``target`` (a bundle-level null set).

    Items that would overshoot are skipped, so the share of rows lands within the smallest weight
    of the target: nulls stay a property of the app (as in real data) yet hit the column's target rate (``missingness.yaml``).
    """
    chosen = np.zeros(len(weights), dtype=bool)
    total = 0.0
    for i in rng.permutation(len(weights)):
        if total + weights[i] <= target + 1e-4:
            chosen[i] = True
            total += weights[i]
    return chosen


@dataclass(frozen=True)
class Vocab:
    """Every fixed pool; arrays of indices refer into the ``pa.Array`` string pools here."""

    bundles: pa.Array  # N_USER_BUNDLES SHA-1 strings
    bundle_cdf: np.ndarray  # user-side popularity
    bundle_cat: np.ndarray  # category index per bundle
    bundle_sub: np.ndarray  # subcategory index per bundle
    bundle_tax: np.ndarray  # taxonomy index per bundle
    bundle_advertiser: np.ndarray  # advertiser index per bundle (rev_by_adv keys)
    advertisers: pa.Array
    adv_bundle_idx: np.ndarray  # N_ADV_BUNDLES indices into ``bundles``
    adv_cdf: np.ndarray
    adv_cat_null: np.ndarray  # bool per advertised app: category/subcategory unknown
    adv_tax_null: np.ndarray  # bool per advertised app: bottom taxonomy unknown
    adv_logit: np.ndarray  # per advertised app buyer-logit effect
    categories: pa.Array
    subcategories: pa.Array
    taxonomies: pa.Array  # lower-case (the ``advertiser_bottom_taxonomy_level`` values)
    taxonomy_keys: pa.Array  # title-case (keys of the taxonomy-level maps)
    cat_logit: np.ndarray
    cat_mu: np.ndarray
    countries: pa.Array
    country_cdf: np.ndarray
    country_ios: np.ndarray  # P(ios) per country
    country_lang: np.ndarray  # language index per country
    country_logit: np.ndarray
    country_mu: np.ndarray
    n_regions: int  # regions per country; region index = country * n_regions + k
    regions: pa.Array
    n_cities: int
    cities: pa.Array
    carriers: pa.Array
    languages: pa.Array
    actions: pa.Array
    formats: pa.Array
    hours: pa.Array
    # device table: one row per device model
    dev_os: np.ndarray  # 0 android, 1 ios
    dev_make: pa.Array
    dev_model: pa.Array
    dev_release: pa.Array
    dev_msrp: np.ndarray
    dev_cdf_android: np.ndarray  # over the android device indices ``dev_android``
    dev_android: np.ndarray
    dev_cdf_ios: np.ndarray
    dev_ios: np.ndarray
    osv_android: pa.Array
    osv_ios: pa.Array
    osv_all: pa.Array  # android then ios versions (keys of dev_osv_hist)


def _category_tree() -> tuple[list[str], list[str], list[int], list[str], list[int]]:
    cats, subs, sub_cat, taxs, tax_sub = [], [], [], [], []
    for c, sub_map in CATEGORY_TREE.items():
        cats.append(c)
        for s, tax_list in sub_map.items():
            subs.append(s)
            sub_cat.append(len(cats) - 1)
            for t in tax_list:
                taxs.append(t)
                tax_sub.append(len(subs) - 1)
    return cats, subs, sub_cat, taxs, tax_sub


def _devices(rng: np.random.Generator) -> dict[str, object]:
    """A device table: make/model/release/MSRP drawn jointly so they stay coherent per device."""
    os_, make, model, release, msrp, weight = [], [], [], [], [], []
    for name, year, price in _IPHONES:
        month = "september" if name.startswith("iphone") else "october"
        os_.append(1), make.append("apple"), model.append(name), release.append(f"{year}_{month}")
        msrp.append(float(price)), weight.append(1.0 + (year - 2018) * 0.5)
    for mk, prefix, share in _ANDROID_MAKES:
        n_models = max(4, int(round(share * 120)))
        for j in range(n_models):
            year = int(rng.integers(2017, 2026))
            if mk == "samsung":
                m = f"{prefix}{'asmg'[j % 4]}{rng.integers(10, 999):03d}{'fbun'[j % 4]}"
            elif mk == "generic":
                m = f"{prefix}{rng.integers(9, 17)}.0"
            else:
                m = f"{prefix}{rng.integers(1, 99)}{'' if j % 3 else ' pro'}".strip()
            base = 80.0 if mk in ("itel", "tecno", "infinix", "generic") else 150.0
            price = float(np.round(base * np.exp(rng.normal(0.6, 0.7)), 0).clip(80, 1200))
            os_.append(0), make.append(mk), model.append(m)
            release.append(f"{year}_{_MONTHS[int(rng.integers(0, 12))]}")
            msrp.append(price), weight.append(share / n_models * 100.0 * float(rng.gamma(1.0)))
    os_a = np.array(os_, dtype=np.int8)
    w = np.array(weight)
    idx_a, idx_i = np.flatnonzero(os_a == 0), np.flatnonzero(os_a == 1)

    def cdf(ix: np.ndarray) -> np.ndarray:
        c = np.cumsum(w[ix] / w[ix].sum())
        c[-1] = 1.0
        return c

    return dict(dev_os=os_a, dev_make=pa.array(make), dev_model=pa.array(model), dev_release=pa.array(release),
                dev_msrp=np.array(msrp), dev_android=idx_a, dev_ios=idx_i, dev_cdf_android=cdf(idx_a),
                dev_cdf_ios=cdf(idx_i))


@lru_cache(maxsize=1)
def get_vocab() -> Vocab:
    """Build (once per process) every fixed pool from ``VOCAB_SEED``."""
    rng = np.random.default_rng(VOCAB_SEED)
    cats, subs, sub_cat, taxs, tax_sub = _category_tree()
    sub_cat_a, tax_sub_a = np.array(sub_cat), np.array(tax_sub)

    bundles = [_sha1(f"bundle-{i}") for i in range(N_USER_BUNDLES)]
    cat_w = np.array([CATEGORY_WEIGHTS[c] for c in cats])
    bundle_cat = rng.choice(len(cats), size=N_USER_BUNDLES, p=cat_w / cat_w.sum())
    bundle_sub = np.empty(N_USER_BUNDLES, dtype=np.int64)
    bundle_tax = np.empty(N_USER_BUNDLES, dtype=np.int64)
    for c in range(len(cats)):  # loop over 22 categories, not rows
        sel = np.flatnonzero(bundle_cat == c)
        sub_pool = np.flatnonzero(sub_cat_a == c)
        bundle_sub[sel] = rng.choice(sub_pool, size=len(sel))
    for s in range(len(subs)):
        sel = np.flatnonzero(bundle_sub == s)
        bundle_tax[sel] = rng.choice(np.flatnonzero(tax_sub_a == s), size=len(sel))

    adv_bundle_idx = rng.permutation(N_USER_BUNDLES)[:N_ADV_BUNDLES]
    adv_cdf = zipf_cdf(N_ADV_BUNDLES, 0.85)
    adv_w = np.diff(np.concatenate([[0.0], adv_cdf]))
    adv_cat_null = _greedy_subset(rng, adv_w, 0.010)
    adv_tax_null = adv_cat_null | _greedy_subset(rng, np.where(adv_cat_null, 0.0, adv_w), 0.3755 - 0.010)

    countries = list(_HEAVY_COUNTRIES) + [c for c in _OTHER_COUNTRIES if c not in _HEAVY_COUNTRIES]
    countries = countries[:238]
    n_c = len(countries)
    country_ios = np.full(n_c, 0.22)
    for code, p in {"us": 0.55, "jp": 0.65, "gb": 0.5, "ca": 0.5, "de": 0.4, "fr": 0.35, "kr": 0.3, "sa": 0.45,
                    "au": 0.55, "ch": 0.55}.items():
        if code in countries:
            country_ios[countries.index(code)] = p
    lang_index = {lang: i for i, lang in enumerate(LANGUAGES)}
    country_lang = np.array([lang_index[_COUNTRY_LANG.get(c, "en")] for c in countries])
    country_logit = rng.normal(0.0, 0.4, n_c)
    country_mu = rng.normal(0.0, 0.15, n_c)
    n_regions, n_cities = 12, 6
    regions = [f"{c}-{k:02d}" for c in countries for k in range(n_regions)]
    cities = [f"{r}-c{k}" for r in regions for k in range(n_cities)]

    return Vocab(
        bundles=pa.array(bundles), bundle_cdf=zipf_cdf(N_USER_BUNDLES, 0.9), bundle_cat=bundle_cat,
        bundle_sub=bundle_sub, bundle_tax=bundle_tax,
        bundle_advertiser=rng.integers(0, N_ADVERTISERS, N_USER_BUNDLES),
        advertisers=pa.array([_sha1(f"advertiser-{i}") for i in range(N_ADVERTISERS)]),
        adv_bundle_idx=adv_bundle_idx, adv_cdf=adv_cdf, adv_cat_null=adv_cat_null, adv_tax_null=adv_tax_null,
        adv_logit=rng.normal(0.0, 0.25, N_ADV_BUNDLES),
        categories=pa.array(cats), subcategories=pa.array(subs), taxonomies=pa.array(taxs),
        taxonomy_keys=pa.array([title_key(t) for t in taxs]),
        cat_logit=np.array([CATEGORY_LOGIT.get(c, 0.0) for c in cats]),
        cat_mu=np.array([CATEGORY_MU.get(c, 0.0) for c in cats]),
        countries=pa.array(countries), country_cdf=zipf_cdf(n_c, 1.1), country_ios=country_ios,
        country_lang=country_lang, country_logit=country_logit, country_mu=country_mu,
        n_regions=n_regions, regions=pa.array(regions), n_cities=n_cities, cities=pa.array(cities),
        carriers=pa.array(list(_CARRIERS)), languages=pa.array(list(LANGUAGES)), actions=pa.array(list(ACTIONS)),
        formats=pa.array(list(FORMATS)), hours=pa.array(list(HOURS)),
        osv_android=pa.array(list(_ANDROID_VERSIONS)), osv_ios=pa.array(list(_IOS_VERSIONS)),
        osv_all=pa.array(list(_ANDROID_VERSIONS) + list(_IOS_VERSIONS)),
        **_devices(rng),
    )
