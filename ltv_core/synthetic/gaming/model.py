"""The gaming data's generative model: install attributes and day-0 behaviour, the revenue after
day 0 drawn from the observed row alone, and the exact oracle of the d120 revenue.

One row per user installed on the partition's date. The features are what is known at the end of
the install day (day 0): the install attributes and day-0 engagement and revenue. A latent
engagement ``e`` shapes the day-0 features but never the labels: ``label_inputs`` reads the written
feature columns (the very values a model sees) and the revenue after day 0 adds only fresh noise:

    retained = 1[U < sigmoid(eta(x))]
    F        = retained * min(exp(mu(x) + SIGMA * z), CAP)          z ~ N(0, 1)
    d_h_rev  = d0_rev + F * c_h,   c_h = cumulative Dirichlet shares of F by day h, c_120 = 1

so ``E[. | x]`` computed from the observed row is Bayes-optimal for ``d120_rev``. ``oracle``
integrates the noise exactly: closed form for the mean, Gauss-Legendre over z for E[log1p].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import expit, ndtr

from ltv_core.synthetic.arrow_build import take_strings, uuid4_strings
from ltv_core.synthetic.gaming.vocab import (APP_IDS, GAME_TYPE, ORGANIC_EFFECTS, ORGANIC_SHARE, PRICE_POINTS,
                                             GamingVocab)

__all__ = ["COEF", "GamingCoefficients", "HORIZON_COLUMNS", "HORIZON_DAYS", "draw_users", "label_inputs",
           "linear_predictors",
           "draw_future", "oracle"]

HORIZON_DAYS = (3, 7, 14, 30, 60, 90, 120)  # cumulative revenue columns d{h}_rev after the day-0 ones
# the columns each horizon matures: its revenue label and its post-outcome coins columns
HORIZON_COLUMNS = {h: (f"d{h}_rev", f"iap_coins_rev_d{h}", f"iap_coins_count_d{h}") for h in HORIZON_DAYS}
# share of the revenue after day 0 earned in (0,3], (3,7], (7,14], (14,30], (30,60], (60,90], (90,120]
INCREMENT_WEIGHTS = np.array([0.20, 0.17, 0.16, 0.18, 0.14, 0.09, 0.06])
INCREMENT_CONCENTRATION = 3.0  # Dirichlet(alpha * weights): how much users differ in their timing
DAY0_PRICE_SHARES = np.array([0.50, 0.25, 0.15, 0.07, 0.02, 0.008, 0.002])  # first purchases are cheap
ADS_PACK_SHARE = 0.08  # share of IAPs that are "remove ads" packs (iap_ads_count), the rest coins
COINS_SHARE_LATER = 0.94  # share of the IAP revenue after day 0 that buys coins
COINS_PER_PURCHASE = 6.5  # mean price of a later coins purchase (counts from revenue)


@dataclass(frozen=True)
class GamingCoefficients:
    """Every coefficient of eta(x) and mu(x) (docs/GENERATOR.md, "Gaming"); tuned once so that the
    seed's statistics hold (tests/unit/test_synthetic_gaming.py), then frozen."""

    # eta: P(any revenue after day 0)
    b0: float = -4.7
    rev0: float = 3.0  # day-0 revenue > 0
    log_sessions: float = 0.55  # * log1p(session_count_d0)
    log_games: float = 0.35  # * log1p(game_count_d0)
    log_level: float = 0.25  # * log1p(current_level_d0)
    log_ad0: float = 0.2  # * log1p(100 * d0_ad_rev): day-0 ad revenue in cents
    iap0: float = 1.5  # paid on day 0
    ios: float = 0.3
    # mu: log of the revenue after day 0 of a retained user
    mu0: float = -3.6
    mu_log_ad0: float = 0.45  # * log1p(100 * d0_ad_rev)
    mu_log_iap0: float = 0.7  # * log1p(d0_iap_rev)
    mu_iap0: float = 1.2
    mu_log_games: float = 0.25
    mu_log_level: float = 0.2
    mu_ios: float = 0.45
    mu_optin: float = 0.1
    sigma: float = 1.85  # irreducible lognormal scale
    cap: float = 3000.0  # USD over 120 days


COEF = GamingCoefficients()


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


PLATFORMS = pa.array(["android", "ios"])
APPS = pa.array([APP_IDS["android"], APP_IDS["ios"]])
CAMPAIGN_TYPE_OR_ORGANIC = ("organic",)  # campaign_type of an install without a campaign


def draw_users(rng: np.random.Generator, n: int, v: GamingVocab) -> dict[str, pa.Array]:
    """The feature columns and ``user_id`` of ``n`` users installed on one day (vectorised)."""
    country = _draw(rng, v.country_cdf, n)
    ios = rng.random(n) < v.country_ios[country]
    optin = np.where(ios, rng.random(n) < 0.38, rng.random(n) < 0.95)
    # device: Apple models on iOS, Android makes by their shares
    dev = np.where(ios, v.ios_devices[_draw(rng, v.ios_device_cdf, n)],
                   v.android_devices[_draw(rng, v.android_device_cdf, n)])
    cls = v.device_class[dev]
    # campaign: organic, else a campaign of the user's platform (Zipf within the platform's block)
    organic = rng.random(n) < ORGANIC_SHARE
    camp = _draw(rng, v.campaign_cdf, n) + np.where(ios, 0, len(v.campaign_ids) // 2)
    ctype = v.campaign_type[camp]
    city = country * (len(v.cities) // len(v.countries)) + _draw(rng, v.city_cdf, n)
    # latent engagement: shapes the day-0 features only (labels read the features)
    eng = (rng.standard_normal(n) + v.country_eng[country] + v.class_eng[cls]
           + np.where(organic, ORGANIC_EFFECTS[0], v.type_eng[ctype] + v.campaign_eng[camp]))
    # a third leave during the tutorial: one short session, no game, no ad, no purchase
    churned = rng.random(n) < expit(-0.9 - 0.9 * eng)
    sessions = np.where(churned, 1, 1 + np.minimum(rng.poisson(np.exp(0.6 + 0.5 * eng)), 40))
    length = np.round(np.where(churned, rng.lognormal(3.6, 0.6, n),
                               sessions * rng.lognormal(5.0 + 0.35 * eng, 0.7)), 1)  # seconds
    games = np.where(churned, 0, rng.poisson(length / 70.0))
    level = 1 + rng.binomial(games, 0.72)
    rv = rng.poisson(0.12 * games * np.where(optin, 1.25, 1.0))
    interstitials = rng.binomial(games, 0.45)
    ecpm = v.country_ecpm[country] * np.where(ios, 1.4, 1.0) * v.class_ecpm[cls] * rng.lognormal(0.0, 0.35, n)
    ad_rev = (1.6 * rv + interstitials) * ecpm / 1000.0
    # day-0 purchases: 1.6% of users; count, price points, coins vs "remove ads" packs
    p_iap = np.where(churned, 0.0, expit(-4.8 + 0.75 * eng + 0.5 * ios + 0.3 * (cls >= 2)))
    buys = np.where(rng.random(n) < p_iap, 1 + rng.poisson(0.15 + 0.25 * np.maximum(eng, 0)), 0)
    owner = np.repeat(np.arange(n), buys)
    price = PRICE_POINTS[_draw(rng, np.cumsum(DAY0_PRICE_SHARES) / DAY0_PRICE_SHARES.sum(), len(owner))]
    ads_pack = rng.random(len(owner)) < ADS_PACK_SHARE
    iap_rev = np.bincount(owner, weights=price, minlength=n)
    coins_rev = np.bincount(owner, weights=np.where(ads_pack, 0.0, price), minlength=n)
    coins_count = np.bincount(owner[~ads_pack], minlength=n)
    ads_count = np.minimum(np.bincount(owner[ads_pack], minlength=n), 4)
    coins_spent = np.round(games * rng.gamma(2.0, 12.0, n) + 900.0 * coins_rev * rng.uniform(0.2, 1.0, n))
    # nulls: no campaign for organic installs; device fields together; city
    no_device = rng.random(n) < 0.004
    no_class = no_device | (rng.random(n) < 0.006)
    no_city = rng.random(n) < 0.03
    ios_ix = ios.astype(np.int64)
    types = pa.concat_arrays([v.campaign_types, pa.array(list(CAMPAIGN_TYPE_OR_ORGANIC))])
    return {
        "user_id": uuid4_strings(rng, n),
        "platform": take_strings(PLATFORMS, ios_ix),
        "is_optin": pa.array(optin.astype(np.int32)),
        "game_type": take_strings(pa.array([GAME_TYPE]), np.zeros(n, np.int64)),
        "app_id": take_strings(APPS, ios_ix),
        "country": take_strings(v.countries, country),
        "campaign_type": take_strings(types, np.where(organic, len(v.campaign_types), ctype)),
        "mobile_classification": take_strings(v.classes, cls, ~no_class),
        "ad_network_id": take_strings(v.ad_networks, v.campaign_network[camp], ~organic),
        "campaign_id": take_strings(v.campaign_ids, camp, ~organic),
        "model": take_strings(v.device_model, dev, ~no_device),
        "manufacturer": take_strings(v.device_make, dev, ~no_device),
        "city": take_strings(v.cities, city, ~no_city),
        "d0_rev": pa.array(ad_rev + iap_rev),
        "d0_ad_rev": pa.array(ad_rev),
        "d0_iap_rev": pa.array(iap_rev),
        "session_count_d0": pa.array(sessions.astype(np.int64)),
        "session_length_d0": pa.array(length),
        "game_count_d0": pa.array(games.astype(np.int64)),
        "current_level_d0": pa.array(level.astype(np.int64)),
        "coins_spend_sum_d0": pa.array(coins_spent),
        "rv_shown_count_d0": pa.array(rv.astype(np.int64)),
        "iap_coins_rev_d0": pa.array(coins_rev),
        "iap_coins_count_d0": pa.array(coins_count.astype(np.int64)),
        "iap_ads_count": pa.array(ads_count.astype(np.int64)),
    }


def _numeric(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64, null as 0 (a null count is no activity)."""
    return np.asarray(table[name].fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)


def _effect(col: pa.ChunkedArray, pool: pa.Array, effects: np.ndarray, default: float = 0.0) -> np.ndarray:
    ix = np.asarray(pc.index_in(col, value_set=pool).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.where(ix >= 0, effects[np.maximum(ix, 0)], default)


def label_inputs(table: pa.Table, v: GamingVocab) -> dict[str, np.ndarray]:
    """The observed quantities the revenue after day 0 depends on, read from the feature columns of
    ``table`` (the generator's in-memory table or the files read back)."""
    ad0 = _numeric(table, "d0_ad_rev")
    iap0 = _numeric(table, "d0_iap_rev")
    organic = np.asarray(pc.equal(table["campaign_type"], "organic").fill_null(False).to_numpy(zero_copy_only=False))
    camp_mu = _effect(table["campaign_id"], v.campaign_ids, v.campaign_mu)
    type_mu = _effect(table["campaign_type"], v.campaign_types, v.type_mu)
    return {
        "rev0": (_numeric(table, "d0_rev") > 0).astype(np.float64),
        "rev0_value": _numeric(table, "d0_rev"),
        "log_sessions": np.log1p(_numeric(table, "session_count_d0")),
        "log_games": np.log1p(_numeric(table, "game_count_d0")),
        "log_level": np.log1p(_numeric(table, "current_level_d0")),
        "log_ad0": np.log1p(100.0 * ad0),
        "iap0": (iap0 > 0).astype(np.float64),
        "log_iap0": np.log1p(iap0),
        "ios": np.asarray(pc.equal(table["platform"], "ios").fill_null(False).to_numpy(zero_copy_only=False),
                          dtype=np.float64),
        "optin": _numeric(table, "is_optin"),
        "country_mu": _effect(table["country"], v.countries, v.country_mu),
        "class_mu": _effect(table["mobile_classification"], v.classes, v.class_mu),
        "campaign_mu": np.where(organic, ORGANIC_EFFECTS[1], camp_mu + type_mu),
    }


def linear_predictors(x: dict[str, np.ndarray], c: GamingCoefficients = COEF) -> tuple[np.ndarray, np.ndarray]:
    """(eta, mu): the logit of any revenue after day 0, and the lognormal location of that revenue."""
    eta = (c.b0 + c.rev0 * x["rev0"] + c.log_sessions * x["log_sessions"] + c.log_games * x["log_games"]
           + c.log_level * x["log_level"] + c.log_ad0 * x["log_ad0"] + c.iap0 * x["iap0"] + c.ios * x["ios"])
    mu = (c.mu0 + c.mu_log_ad0 * x["log_ad0"] + c.mu_log_iap0 * x["log_iap0"] + c.mu_iap0 * x["iap0"]
          + c.mu_log_games * x["log_games"] + c.mu_log_level * x["log_level"] + c.mu_ios * x["ios"]
          + c.mu_optin * x["optin"] + x["country_mu"] + x["class_mu"] + x["campaign_mu"])
    return eta, mu


def draw_future(rng: np.random.Generator, x: dict[str, np.ndarray], eta: np.ndarray, mu: np.ndarray,
                coins0: tuple[np.ndarray, np.ndarray], c: GamingCoefficients = COEF) -> dict[str, np.ndarray]:
    """Every horizon's cumulative revenue and coins columns (before immaturity nulls), fresh noise only.

    ``coins0`` is the day-0 (iap_coins_rev_d0, iap_coins_count_d0). The revenue after day 0 splits
    into ads (at most a per-user ad ceiling) and in-app purchases (the rest): whales are payers.
    """
    n = len(eta)
    retained = rng.random(n) < expit(eta)
    future = np.where(retained, np.minimum(np.exp(mu + c.sigma * rng.standard_normal(n)), c.cap), 0.0)
    shares = rng.gamma(INCREMENT_CONCENTRATION * INCREMENT_WEIGHTS[None, :], size=(n, len(INCREMENT_WEIGHTS)))
    cum = np.cumsum(shares, axis=1) / shares.sum(axis=1, keepdims=True)
    cum[:, -1] = 1.0
    ad_ceiling = np.exp(np.log(1.5) + 0.5 * rng.standard_normal(n) + 0.8 * x["log_ad0"] / 3)
    iap_future = np.maximum(future - ad_ceiling, 0.0)
    r0 = x["rev0_value"]
    out: dict[str, np.ndarray] = {}
    for j, h in enumerate(HORIZON_DAYS):
        c_h = cum[:, j]
        coins_rev = COINS_SHARE_LATER * iap_future * c_h
        out[f"d{h}_rev"] = r0 + future * c_h
        out[f"iap_coins_rev_d{h}"] = coins0[0] + coins_rev
        out[f"iap_coins_count_d{h}"] = coins0[1] + np.ceil(coins_rev / COINS_PER_PURCHASE).astype(np.int64)
    return out


_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)
_Z_LIMIT = 10.0  # |z| beyond this has probability < 1e-23


def oracle(x: dict[str, np.ndarray], eta: np.ndarray, mu: np.ndarray, c: GamingCoefficients = COEF
           ) -> dict[str, np.ndarray]:
    """Bayes-optimal d120 predictions given the observed row: E[y], E[log1p y], P(y > 0).

    y = r0 + B * min(X, CAP) with r0 = d0_rev observed, B ~ Bernoulli(sigmoid(eta)), X lognormal.
    E[min(X, CAP)] is closed form; E[log1p(r0 + min(X, CAP))] is the constant tail above the cap
    plus a 48-node Gauss-Legendre integral over z below it (relative error < 1e-9 against adaptive
    quadrature; tested).
    """
    p = expit(eta)
    r0 = x["rev0_value"]
    zb = (np.log(c.cap) - mu) / c.sigma
    above = 1.0 - ndtr(zb)
    mean_x = np.exp(mu + c.sigma**2 / 2) * ndtr(zb - c.sigma) + c.cap * above
    lo, hi = -_Z_LIMIT, np.clip(zb, -_Z_LIMIT, _Z_LIMIT)
    half = (hi - lo) / 2
    z = lo + half[:, None] * (_GL_X[None, :] + 1)
    f = np.logaddexp(np.log1p(r0)[:, None], mu[:, None] + c.sigma * z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    log_mid = half * (f @ _GL_W)
    log_x = log_mid + np.log1p(r0 + c.cap) * above
    return {
        "oracle_log1p_d120": (1 - p) * np.log1p(r0) + p * log_x,
        "oracle_mean_d120": r0 + p * mean_x,
        "oracle_p_payer_d120": np.where(r0 > 0, 1.0, p),
    }
