"""The label model of the synthetic data: labels from observed features, and its exact oracle.

The generator first writes every feature column, then calls ``label_inputs`` on that *Arrow
table* (the very values a model will read) to get the buyer logit ``eta(x)`` and the lognormal
location ``mu(x)``. Labels add only fresh, independent noise:

    buyer  = 1[U < sigmoid(eta(x) + eps)],      eps ~ N(0, LOGIT_NOISE_SD)
    y_d7   = buyer * clip(exp(mu(x) + SIGMA * z), 0.01, 5000)  rounded to cents,  z ~ N(0, 1)

so ``E[. | x]`` computed from the observed row is Bayes-optimal: no hidden per-row latent drives
both the features and the labels. ``oracle`` integrates the noise exactly (Gauss-Hermite over eps,
closed-form normal CDFs and Gauss-Legendre over z); the only approximation is ignoring the rounding
of y to cents (|error| < 0.005 on y, far below 1e-4 on the reported means).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import expit, ndtr

from ltv_core.synthetic.missingness import NULL_TARGETS
from ltv_core.synthetic.vocab import get_vocab

__all__ = [
    "COEF",
    "LabelCoefficients",
    "MapEntries",
    "map_entries",
    "label_inputs",
    "linear_predictors",
    "draw_labels",
    "oracle",
    "PRICE_LADDER",
    "snap_to_price_points",
]

DAY = 86_400.0
REVENUE_FLOOR = 0.01  # a buyer's revenue is never 0 after rounding (buyer_d7 == 1[rev > 0])
REVENUE_CAP = 5000.0
PRICE_POINTS = (0.99, 1.99, 4.99, 9.99, 19.99, 49.99, 99.99)


def _price_ladder() -> np.ndarray:
    vals = {round(p * k, 2) for p in PRICE_POINTS for k in range(1, 10)}
    vals |= {round(99.99 * k, 2) for k in range(1, 51)}
    return np.array(sorted(v for v in vals if v <= REVENUE_CAP))


PRICE_LADDER = _price_ladder()  # sums of store price points; snapped revenues land on these
_LADDER_MID = (PRICE_LADDER[1:] + PRICE_LADDER[:-1]) / 2


def snap_to_price_points(x: np.ndarray) -> np.ndarray:
    """Nearest ladder value (the ``price_point_share`` knob): creates the ties real stores have."""
    return PRICE_LADDER[np.searchsorted(_LADDER_MID, x, side="right")]


@dataclass(frozen=True)
class LabelCoefficients:
    """Every coefficient of eta(x) and mu(x); docs/GENERATOR.md prints this table.

    Tuned once so that the acceptance ranges of ``tests/unit/test_synthetic.py`` hold (buyer rate, revenue
    quantiles, the quick LightGBM's AUC / PR-AUC / RMSLE cut / top-decile capture), then frozen.
    """

    b0: float = -6.67  # buyer-logit intercept
    hist: float = 0.8  # has purchase history (iap_revenue_usd_bundle non-empty)
    log_spend: float = 0.3  # * log1p(sum of iap_revenue_usd_bundle values)
    log_buys: float = 0.3  # * log1p(sum of num_buys_bundle values)
    own_hist: float = 0.4  # the advertised app is a key of iap_revenue_usd_bundle
    whale_own: float = 1.0  # * whale_users_bundle_revenue_prank[advertiser_bundle]
    buy_recency: float = 0.6  # * exp(-days since last_buy / 14)
    log_sessions: float = 1.2  # * log1p(sum of avg_daily_sessions values)
    ios: float = 0.8
    log_msrp: float = 0.6  # * log(release_msrp / 300)
    install_recency: float = 1.5  # * exp(-days since last_ins / 7)
    act_days: float = 2.0  # * (avg_act_days / 7 - 0.5)
    wifi: float = 2.0  # * (wifi_ratio - 0.4)
    weekend: float = 1.5  # * (weekend_ratio - 0.4)
    log_apps: float = 0.5  # * log1p(number of user_bundles)
    logit_noise_sd: float = 0.8  # eps: irreducible noise on the logit
    # lognormal location of a buyer's d7 revenue
    mu0: float = 1.35
    mu_log_spend: float = 0.22  # * (log1p(spend) - 2.5) for rows with history
    mu_whale_own: float = 0.5
    mu_ios: float = 0.15
    mu_log_msrp: float = 0.12
    sigma: float = 1.85  # irreducible lognormal scale


COEF = LabelCoefficients()


@dataclass(frozen=True)
class MapEntries:
    """A map column flattened: entry -> row (``parent``), keys, values; row validity and length."""

    parent: np.ndarray
    keys: pa.Array
    values: pa.Array
    valid: np.ndarray
    length: np.ndarray


def map_entries(col: pa.Array | pa.ChunkedArray) -> MapEntries:
    """Flatten a MAP column. pyarrow's list kernels reject map types, so view it as list<struct>."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    lst = arr.cast(pa.list_(pa.struct([pa.field("key", t.key_type, nullable=False), ("value", t.item_type)])))
    flat = pc.list_flatten(lst)
    return MapEntries(
        parent=np.asarray(pc.list_parent_indices(lst), dtype=np.int64),
        keys=flat.field("key"),
        values=flat.field("value"),
        valid=np.asarray(lst.is_valid()),
        length=np.asarray(pc.list_value_length(lst).fill_null(0), dtype=np.int64),
    )


def _own_key_value(e: MapEntries, own: pa.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(has key, value) of each row's own ``advertiser_bundle`` inside a map (keys are unique)."""
    if len(e.parent) == 0:
        return np.zeros(n, bool), np.zeros(n)
    match = np.asarray(pc.equal(e.keys, own.take(pa.array(e.parent))).fill_null(False))
    vals = np.asarray(e.values.fill_null(0), dtype=np.float64)
    has = np.bincount(e.parent[match], minlength=n) > 0
    return has, np.bincount(e.parent[match], weights=vals[match], minlength=n)


def _map_sum(e: MapEntries, n: int) -> np.ndarray:
    return np.bincount(e.parent, weights=np.asarray(e.values.fill_null(0), dtype=np.float64), minlength=n)


def _recency(col: pa.ChunkedArray, t: np.ndarray, tau_days: float) -> np.ndarray:
    """exp(-days since ts / tau) for valid timestamps (0 < ts <= t), else 0 (missing or junk)."""
    ts = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    ok = np.isfinite(ts) & (ts > 0) & (ts <= t)
    days = np.where(ok, (t - np.where(ok, ts, 0)) / DAY, 0.0)
    return np.where(ok, np.exp(-days / tau_days), 0.0)


def _numeric(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _effect(col: pa.ChunkedArray, pool: pa.Array, effects: np.ndarray) -> np.ndarray:
    """Per-level effect of a categorical column (0 for null or unknown levels)."""
    idx = pc.index_in(col, value_set=pool)
    ix = np.asarray(idx.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.where(ix >= 0, effects[np.maximum(ix, 0)], 0.0)


@lru_cache(maxsize=1)
def _adv_pool() -> pa.Array:
    """The advertised apps' SHA-1s, in the order of ``Vocab.adv_logit``."""
    v = get_vocab()
    return v.bundles.take(pa.array(v.adv_bundle_idx))


def label_inputs(table: pa.Table, event_time: float | np.ndarray) -> dict[str, np.ndarray]:
    """The observed quantities the labels depend on, read from the feature columns of ``table``.

    ``event_time`` is the rows' partition time in Unix seconds (scalar or per row). Works on the
    generator's in-memory table and on the files read back, which is how the tests prove the
    oracle uses observed columns only.
    """
    n = table.num_rows
    v = get_vocab()
    t = np.broadcast_to(np.asarray(event_time, dtype=np.float64), (n,))
    own = table["advertiser_bundle"].combine_chunks()
    spend_e = map_entries(table["iap_revenue_usd_bundle"])
    own_hist, _ = _own_key_value(spend_e, own, n)
    _, whale_own = _own_key_value(map_entries(table["whale_users_bundle_revenue_prank"]), own, n)
    msrp = _numeric(table["release_msrp"])
    act = _numeric(table["avg_act_days"])
    wifi = _numeric(table["wifi_ratio"])
    weekend = _numeric(table["weekend_ratio"])
    n_apps = pc.list_value_length(table["user_bundles"]).fill_null(0).to_numpy(zero_copy_only=False)
    return {
        "hist": (spend_e.length > 0).astype(np.float64),
        "log_spend": np.log1p(_map_sum(spend_e, n)),
        "log_buys": np.log1p(_map_sum(map_entries(table["num_buys_bundle"]), n)),
        "own_hist": own_hist.astype(np.float64),
        "whale_own": whale_own,
        "buy_recency": _recency(table["last_buy"], t, 14.0),
        "log_sessions": np.log1p(_map_sum(map_entries(table["avg_daily_sessions"]), n)),
        "ios": np.asarray(pc.equal(table["dev_os"], "ios").fill_null(False).to_numpy(zero_copy_only=False),
                          dtype=np.float64),
        "log_msrp": np.where(np.isfinite(msrp), np.log(np.where(np.isfinite(msrp), msrp, 300.0) / 300.0), 0.0),
        "install_recency": _recency(table["last_ins"], t, 7.0),
        "act_days": np.where(np.isfinite(act), np.nan_to_num(act) / 7.0 - 0.5, 0.0),
        "wifi": np.where(np.isfinite(wifi), np.nan_to_num(wifi) - 0.4, 0.0),
        "weekend": np.where(np.isfinite(weekend), np.nan_to_num(weekend) - 0.4, 0.0),
        "log_apps": np.log1p(np.asarray(n_apps, dtype=np.float64)),
        "cat_logit": _effect(table["advertiser_category"], v.categories, v.cat_logit),
        "cat_mu": _effect(table["advertiser_category"], v.categories, v.cat_mu),
        "country_logit": _effect(table["country"], v.countries, v.country_logit),
        "country_mu": _effect(table["country"], v.countries, v.country_mu),
        "adv_logit": _effect(table["advertiser_bundle"], _adv_pool(), v.adv_logit),
    }


def linear_predictors(inputs: dict[str, np.ndarray], coef: LabelCoefficients = COEF) -> tuple[np.ndarray, np.ndarray]:
    """(eta, mu): the buyer logit without noise and the lognormal location of a buyer's revenue."""
    c, x = coef, inputs
    eta = (c.b0 + c.hist * x["hist"] + c.log_spend * x["log_spend"] + c.log_buys * x["log_buys"]
           + c.own_hist * x["own_hist"] + c.whale_own * x["whale_own"] + c.buy_recency * x["buy_recency"]
           + c.log_sessions * x["log_sessions"] + c.ios * x["ios"] + c.log_msrp * x["log_msrp"]
           + c.install_recency * x["install_recency"] + c.act_days * x["act_days"]
           + c.wifi * x["wifi"] + c.weekend * x["weekend"] + c.log_apps * x["log_apps"]
           + x["cat_logit"] + x["country_logit"] + x["adv_logit"])
    mu = (c.mu0 + c.mu_log_spend * (x["log_spend"] - 2.5) * x["hist"] + c.mu_whale_own * x["whale_own"]
          + c.mu_ios * x["ios"] + c.mu_log_msrp * x["log_msrp"] + x["cat_mu"] + x["country_mu"])
    return eta, mu


def _clipped_revenue(rng: np.random.Generator, mu: np.ndarray, sigma: float, price_point_share: float) -> np.ndarray:
    x = np.exp(mu + sigma * rng.standard_normal(len(mu)))
    rev = np.round(np.clip(x, REVENUE_FLOOR, REVENUE_CAP), 2)
    snap = rng.random(len(mu)) < price_point_share
    return np.where(snap, snap_to_price_points(x), rev)


def _increment(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Revenue added between horizons: Bernoulli(p) * LogNormal(1.2, 1.6), in cents."""
    hit = rng.random(len(p)) < p
    amount = np.round(np.clip(rng.lognormal(1.2, 1.6, len(p)), REVENUE_FLOOR, REVENUE_CAP), 2)
    return np.where(hit, amount, 0.0)


def draw_labels(rng: np.random.Generator, eta: np.ndarray, mu: np.ndarray, *, zero_revenue_buyer_share: float,
                price_point_share: float, coef: LabelCoefficients = COEF) -> dict[str, np.ndarray]:
    """All 17 label / post-outcome columns (NaN = null) from eta, mu and fresh noise."""
    n = len(eta)
    buyer = rng.random(n) < expit(eta + coef.logit_noise_sd * rng.standard_normal(n))
    rev = _clipped_revenue(rng, mu, coef.sigma, price_point_share)
    zero_buyer = buyer & (rng.random(n) < zero_revenue_buyer_share)
    rev7 = np.where(buyer & ~zero_buyer, rev, 0.0)
    inc14 = _increment(rng, np.where(buyer, 0.35, 0.012))
    inc28 = _increment(rng, np.where(buyer, 0.30, 0.010))
    rev14 = np.round(rev7 + inc14, 2)
    rev28 = np.round(rev14 + inc28, 2)
    b7 = buyer.astype(np.int64)
    b14 = b7 | (rev14 > 0)
    b28 = b14 | (rev28 > 0)
    buy7 = b7 * (1 + rng.poisson(0.4 * np.log1p(rev7)))
    buy14 = buy7 + (inc14 > 0) * (1 + rng.poisson(0.4 * np.log1p(inc14)))
    buy28 = buy14 + (inc28 > 0) * (1 + rng.poisson(0.4 * np.log1p(inc28)))
    out = {
        "buyer_d1": b7 & (rng.random(n) < 0.6), "buyer_d7": b7, "buyer_d14": b14, "buyer_d28": b28,
        "buy_d7": buy7, "buy_d14": buy14, "buy_d28": buy28,
        "iap_revenue_d7": rev7, "iap_revenue_d14": rev14, "iap_revenue_d28": rev28,
    }
    out.update(_retention(rng, buyer))
    return out


def _retention(rng: np.random.Generator, buyer: np.ndarray) -> dict[str, np.ndarray]:
    """Post-install labels: Bernoulli / ratio in [0, 1], buyers twice as likely, jointly 7.3% null."""
    n = len(buyer)
    f = np.where(buyer, 2.0, 1.0)
    r1 = rng.random(n) < np.minimum(0.35 * f, 0.95)
    r3 = rng.random(n) < np.minimum(0.22 * f, 0.95)
    r7 = rng.random(n) < np.minimum(0.15 * f, 0.95)
    out = {
        "retention_d1": r1.astype(float), "retention_d3": r3.astype(float), "retentiond7": r7.astype(float),
        "retention_d1_to_d7": rng.binomial(6, 0.15 + 0.5 * r1) / 6.0,
        "retention_d3_to_d7": rng.binomial(4, 0.10 + 0.5 * r3) / 4.0,
        "retention_d7_to_d14": rng.binomial(7, 0.08 + 0.6 * r7) / 7.0,
    }
    null = rng.random(n) < NULL_TARGETS["retention_d1"]
    out = {k: np.where(null, np.nan, val) for k, val in out.items()}
    reg = (rng.random(n) < 0.1 * f).astype(float)
    out["registration"] = np.where(rng.random(n) < NULL_TARGETS["registration"], np.nan, reg)
    return out


_GH_X, _GH_W = np.polynomial.hermite.hermgauss(20)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(24)
_Z_LIMIT = 10.0  # |z| beyond this has probability < 1e-23


def _p_buyer(eta: np.ndarray, sd: float) -> np.ndarray:
    """E_eps[sigmoid(eta + eps)], eps ~ N(0, sd): Gauss-Hermite, 20 nodes (relative error < 1e-11)."""
    return expit(eta[:, None] + np.sqrt(2.0) * sd * _GH_X[None, :]) @ _GH_W / np.sqrt(np.pi)


def _clipped_lognormal_moments(mu: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """E[clip(X)] (closed form) and E[log1p(clip(X))] for X = exp(mu + sigma z).

    The log moment splits at the clip points: constants outside, and a smooth Gaussian-weighted
    softplus inside, integrated by 24-node Gauss-Legendre (relative error < 1e-9 against adaptive
    quadrature over mu in [-1, 9]).
    """
    za = (np.log(REVENUE_FLOOR) - mu) / sigma
    zb = (np.log(REVENUE_CAP) - mu) / sigma
    pa_, pb = ndtr(za), ndtr(zb)
    mid = np.exp(mu + sigma**2 / 2) * (ndtr(zb - sigma) - ndtr(za - sigma))
    mean = REVENUE_FLOOR * pa_ + mid + REVENUE_CAP * (1 - pb)
    lo, hi = np.maximum(za, -_Z_LIMIT), np.minimum(zb, _Z_LIMIT)
    half = (hi - lo) / 2
    z = lo[:, None] + half[:, None] * (_GL_X[None, :] + 1)
    u = mu[:, None] + sigma * z
    softplus = np.maximum(u, 0.0) + np.log1p(np.exp(-np.abs(u)))  # log1p(exp(u)) without overflow
    f = softplus * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    log_mid = half * (f @ _GL_W)
    log_mean = np.log1p(REVENUE_FLOOR) * pa_ + log_mid + np.log1p(REVENUE_CAP) * (1 - pb)
    return mean, log_mean


def _price_point_moments(mu: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """E[snap(X)] and E[log1p(snap(X))]: exact sums over the ladder's CDF bins."""
    edges = (np.log(_LADDER_MID)[None, :] - mu[:, None]) / sigma
    cdf = ndtr(edges)
    prob = np.diff(np.concatenate([np.zeros((len(mu), 1)), cdf, np.ones((len(mu), 1))], axis=1), axis=1)
    return prob @ PRICE_LADDER, prob @ np.log1p(PRICE_LADDER)


def oracle(eta: np.ndarray, mu: np.ndarray, *, zero_revenue_buyer_share: float, price_point_share: float,
           coef: LabelCoefficients = COEF) -> dict[str, np.ndarray]:
    """Bayes-optimal d7 predictions given the observed row: P(y>0), E[y], E[log1p y]."""
    p = _p_buyer(eta, coef.logit_noise_sd) * (1.0 - zero_revenue_buyer_share)
    mean, log_mean = _clipped_lognormal_moments(mu, coef.sigma)
    if price_point_share > 0:
        pp_mean, pp_log = _price_point_moments(mu, coef.sigma)
        mean = (1 - price_point_share) * mean + price_point_share * pp_mean
        log_mean = (1 - price_point_share) * log_mean + price_point_share * pp_log
    return {"oracle_log1p_d7": p * log_mean, "oracle_mean_d7": p * mean, "oracle_p_buyer_d7": p}
