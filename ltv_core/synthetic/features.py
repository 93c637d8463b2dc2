"""Feature columns of one synthetic partition (everything a model may read, plus ``row_id``).

Rows are drawn with latent *presence blocks* (profile, engagement, installs, purchase history) so
that missingness co-occurs as in the real data (whole blocks of user-profile columns missing
together), and each column's null rate lands on ``NULL_TARGETS`` (``missingness.yaml``). The blocks and the other latents (user age, installed-app set...) only
shape the features: labels are drawn later from the *observed* columns alone (``model.py``), so the
oracle computed from those columns is Bayes-optimal.

All draws are vectorised numpy over rows / map entries; strings are built with Arrow ``take``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa

from ltv_core.synthetic.arrow_build import (
    dedupe_entries,
    list_array,
    map_array,
    segment_max,
    sorted_groups,
    take_strings,
    uuid4_strings,
)
from ltv_core.synthetic.missingness import NULL_TARGETS
from ltv_core.synthetic.vocab import N_USER_BUNDLES, Vocab, draw_from_cdf

__all__ = ["NULL_TARGETS", "BLOCK_PRESENCE", "EMPTY_SHARE", "build_features"]

DAY = 86_400
FAR_FUTURE = 10 * 365 * DAY

# Latent presence blocks: P(block) and the block it nests in (None = independent of the others).
BLOCK_PRESENCE: dict[str, tuple[float, str | None]] = {
    "profile": (0.565, None),  # the ~43.5% "user profile missing" cluster
    "engagement": (1 - 0.7404, "profile"),  # user_actions_*; sessions/durations nest inside
    "installs": (1 - 0.8531, None),
    "history": (1 - 0.9575, "profile"),  # historical purchases (iap_revenue_usd_*, num_buys_*)
}

# Share of *present* rows whose map/list is empty ([] rather than None): both occur in real data.
EMPTY_SHARE: dict[str, float] = {
    "new_bundles": 0.40, "bundles_ins": 0.15, "user_bundles_l28d": 0.10, "cpm": 0.01, "ctr": 0.03,
    "bcat": 0.05, "bcat_bottom_taxonomy": 0.05, "rwd_prank": 0.02, "avg_daily_sessions": 0.03,
}


@dataclass
class _Ctx:
    """Per-partition state shared by the column builders."""

    rng: np.random.Generator
    n: int
    t: int  # partition time, Unix seconds (the rows' event time)
    hour: int
    weekday: int
    vocab: Vocab
    types: dict[str, pa.DataType]
    invalid_ts_share: float
    out: dict[str, pa.Array] = field(default_factory=dict)
    lat: dict[str, np.ndarray] = field(default_factory=dict)  # latents shared between builders

    def put(self, name: str, arr: pa.Array) -> None:
        """Store a column cast to the spec's type (the spec is the single source of truth)."""
        want = self.types[name]
        self.out[name] = arr if arr.type == want else arr.cast(want)

    def present(self, col: str, parent: np.ndarray, parent_p: float, u: np.ndarray | None = None) -> np.ndarray:
        """Rows where ``col`` is non-null: inside ``parent``, thinned to hit NULL_TARGETS[col]."""
        q = min(1.0, (1.0 - NULL_TARGETS[col]) / parent_p)
        u = self.rng.random(self.n) if u is None else u
        return parent & (u < q)

    def empty(self, col: str, valid: np.ndarray) -> np.ndarray:
        return valid & (self.rng.random(self.n) < EMPTY_SHARE.get(col, 0.0))

    def past_ts(self, mean_days: float, size: int, day_floor: bool = False, t: int | None = None) -> np.ndarray:
        """Unix seconds strictly before the partition time, ``t - Exp(mean_days)``."""
        t = self.t if t is None else t
        ts = t - np.maximum(1, np.round(self.rng.exponential(mean_days * DAY, size))).astype(np.int64)
        return (ts // DAY) * DAY if day_floor else ts

    def corrupt_ts(self, ts: np.ndarray) -> np.ndarray:
        """The invalid-timestamp knob: a share of values become 0 or ten years in the future."""
        if self.invalid_ts_share <= 0 or len(ts) == 0:
            return ts
        bad = self.rng.random(len(ts)) < self.invalid_ts_share
        if not bad.any():
            return ts
        junk = np.where(self.rng.random(len(ts)) < 0.5, 0, self.t + FAR_FUTURE).astype(ts.dtype)
        return np.where(bad, junk, ts)


# --- generic ragged helpers --------------------------------------------------------------------------
def _ragged_keys(ctx: _Ctx, valid: np.ndarray, extra_mean: float, max_k: int, cdf: np.ndarray,
                 n_keys: int, forced: np.ndarray | None = None, forced_rows: np.ndarray | None = None,
                 empty: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys per valid row: 1 + Poisson(extra_mean) draws (capped), plus optional forced keys."""
    k = np.where(valid, np.minimum(1 + ctx.rng.poisson(extra_mean, ctx.n), max_k), 0)
    parent = np.repeat(np.arange(ctx.n), k)
    key = draw_from_cdf(ctx.rng, cdf, len(parent))
    if forced is not None:
        rows = np.flatnonzero(valid if forced_rows is None else (valid & forced_rows))
        parent = np.concatenate([parent, rows])
        key = np.concatenate([key, forced[rows]])
    if empty is not None and empty.any():
        keep = ~empty[parent]
        parent, key = parent[keep], key[keep]
    return dedupe_entries(parent, key, n_keys, ctx.n)


def _fmap(ctx: _Ctx, name: str, counts: np.ndarray, keys: pa.Array, values: np.ndarray, valid: np.ndarray) -> None:
    ctx.put(name, map_array(counts, keys, pa.array(values), valid, ctx.types[name]))


def _group_by(parent: np.ndarray, group_key: np.ndarray, n_groups: int, n_rows: int,
              values: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate entries by (row, group) -> parent, group, counts, aggregated value (sum/max/min)."""
    code = parent.astype(np.int64) * n_groups + group_key
    uniq, inv = sorted_groups(code)
    if how == "sum":
        agg = np.bincount(inv, weights=values, minlength=len(uniq))
    else:
        agg = np.full(len(uniq), -np.inf if how == "max" else np.inf)
        (np.maximum if how == "max" else np.minimum).at(agg, inv, values)
    p = uniq // n_groups
    return p, uniq % n_groups, np.bincount(p, minlength=n_rows).astype(np.int64), agg


# --- builders -----------------------------------------------------------------------------------------
def _scalars(ctx: _Ctx) -> None:
    """Advertiser, geo, device and time scalars (the near-complete columns)."""
    v, rng, n = ctx.vocab, ctx.rng, ctx.n
    adv = draw_from_cdf(rng, v.adv_cdf, n)
    bundle = v.adv_bundle_idx[adv]
    ctx.lat.update(adv=adv, adv_bundle=bundle)
    ctx.put("advertiser_bundle", take_strings(v.bundles, bundle))
    cat_ok = ~v.adv_cat_null[adv]
    ctx.put("advertiser_category", take_strings(v.categories, v.bundle_cat[bundle], cat_ok))
    ctx.put("advertiser_subcategory", take_strings(v.subcategories, v.bundle_sub[bundle], cat_ok))
    ctx.put("advertiser_bottom_taxonomy_level", take_strings(v.taxonomies, v.bundle_tax[bundle], ~v.adv_tax_null[adv]))

    country = draw_from_cdf(rng, v.country_cdf, n)
    country_ok = rng.random(n) >= NULL_TARGETS["country"]
    region = country * v.n_regions + np.minimum(rng.geometric(0.25, n) - 1, v.n_regions - 1)
    city = region * v.n_cities + rng.integers(0, v.n_cities, n)
    ctx.lat.update(country=country, region=region, city=city)
    ctx.put("country", take_strings(v.countries, country, country_ok))
    p_country = 1.0 - NULL_TARGETS["country"]
    ctx.put("region", take_strings(v.regions, region, country_ok & ctx.present("region", np.ones(n, bool), p_country)))
    carrier = (country * 7 + rng.integers(0, 4, n)) % len(v.carriers)
    ctx.put("carrier", take_strings(v.carriers, carrier, ctx.present("carrier", np.ones(n, bool), 1.0)))
    _device(ctx, country)
    ctx.put("hour", pa.repeat(pa.scalar(f"{ctx.hour:02d}"), n))
    ctx.put("weekday", pa.array(np.full(n, ctx.weekday, dtype=np.int64)))


def _device(ctx: _Ctx, country: np.ndarray) -> None:
    """Make/model/osv/release/MSRP drawn jointly from the device table; OS share depends on country."""
    v, rng, n = ctx.vocab, ctx.rng, ctx.n
    ios = rng.random(n) < v.country_ios[country]
    dev = np.where(ios, v.dev_ios[draw_from_cdf(rng, v.dev_cdf_ios, n)],
                   v.dev_android[draw_from_cdf(rng, v.dev_cdf_android, n)])
    n_a, n_i = len(v.osv_android), len(v.osv_ios)
    osv = np.where(ios, n_a + np.minimum(rng.geometric(0.35, n) - 1, n_i - 1),
                   n_a - 1 - np.minimum(rng.geometric(0.3, n) - 1, n_a - 1))
    ctx.lat.update(ios=ios, osv=osv)
    null_dev, null_rel, null_msrp = (NULL_TARGETS[c] for c in ("dev_model", "release_date", "release_msrp"))
    dev_ok = rng.random(n) >= null_dev  # unknown device: make/model/osv null together
    rel_ok = dev_ok & (rng.random(n) >= (null_rel - null_dev) / (1 - null_dev))
    msrp_ok = rel_ok & (rng.random(n) >= (null_msrp - null_rel) / (1 - null_rel))
    os_ok = rng.random(n) >= NULL_TARGETS["dev_os"]
    ctx.put("dev_make", take_strings(v.dev_make, dev, dev_ok))
    ctx.put("dev_model", take_strings(v.dev_model, dev, dev_ok))
    ctx.put("dev_os", take_strings(pa.array(["android", "ios"]), ios.astype(np.int64), os_ok))
    ctx.put("dev_osv", take_strings(v.osv_all, osv, dev_ok))
    ctx.put("release_date", take_strings(v.dev_release, dev, rel_ok))
    ctx.put("release_msrp", pa.array(np.where(msrp_ok, v.dev_msrp[dev], np.nan), from_pandas=True))


def _histogram(ctx: _Ctx, name: str, valid: np.ndarray, own: np.ndarray,
               others: Callable[[np.ndarray], np.ndarray], pool: pa.Array) -> None:
    """Request histogram: the row's own value holds 70-95% of LogNormal(3, 1.2) requests."""
    rng, n = ctx.rng, ctx.n
    k_other = np.where(valid, rng.binomial(4, 0.3, n), 0)
    parent = np.concatenate([np.repeat(np.arange(n), k_other), np.flatnonzero(valid)])
    key = np.concatenate([others(parent[: k_other.sum()]), own[valid]])  # others(entry rows) -> keys
    parent, key, counts = dedupe_entries(parent, key, len(pool), n)
    is_own = key == own[parent]
    dom = rng.uniform(0.7, 0.95, n)
    w = rng.exponential(1.0, len(parent)) * ~is_own
    w_sum = np.bincount(parent, weights=w, minlength=n)
    has_other = w_sum > 0
    share = np.where(is_own, np.where(has_other[parent], dom[parent], 1.0),
                     (1 - dom[parent]) * w / np.where(has_other, w_sum, 1.0)[parent])
    total = np.round(rng.lognormal(3.0, 1.2, n)) + 1
    values = np.maximum(1.0, np.round(total[parent] * share))
    _fmap(ctx, name, counts, take_strings(pool, key), values, valid)


def _profile(ctx: _Ctx, profile: np.ndarray) -> None:
    """The user-profile block: histograms, ratios, first-seen, cpm/ctr, rwd, category mixes."""
    v, rng, n, lat = ctx.vocab, ctx.rng, ctx.n, ctx.lat
    p_prof = BLOCK_PRESENCE["profile"][0]
    both = ctx.present("country_hist", profile, p_prof)
    _histogram(ctx, "country_hist", both, lat["country"],
               lambda p: draw_from_cdf(rng, v.country_cdf, len(p)), v.countries)
    _histogram(ctx, "region_hist", ctx.present("region_hist", profile, p_prof), lat["region"],
               lambda p: lat["country"][p] * v.n_regions + rng.integers(0, v.n_regions, len(p)), v.regions)
    _histogram(ctx, "city_hist", ctx.present("city_hist", profile, p_prof), lat["city"],
               lambda p: lat["region"][p] * v.n_cities + rng.integers(0, v.n_cities, len(p)), v.cities)
    _histogram(ctx, "dev_language_hist", ctx.present("dev_language_hist", profile, p_prof),
               v.country_lang[lat["country"]], lambda p: rng.integers(0, len(v.languages), len(p)), v.languages)
    n_a = len(v.osv_android)
    _histogram(ctx, "dev_osv_hist", ctx.present("dev_osv_hist", profile, p_prof), lat["osv"],
               lambda p: np.where(lat["ios"][p], n_a + rng.integers(0, len(v.osv_ios), len(p)),
                                  rng.integers(0, n_a, len(p))), v.osv_all)
    _hour_ratio(ctx, ctx.present("hour_ratio", profile, p_prof))
    u_ratio = rng.random(n)
    for col in ("weekend_ratio", "wifi_ratio"):
        ok = ctx.present(col, profile, p_prof, u_ratio)
        ctx.put(col, pa.array(np.where(ok, np.round(rng.beta(2, 3, n), 4), np.nan), from_pandas=True))
    age_days = rng.gamma(2.0, 35.0, n) + 0.5  # latent: how long the user has been seen
    ok = ctx.present("weeks_since_first_seen", profile, p_prof)
    ctx.put("weeks_since_first_seen", pa.array(np.where(ok, np.round(age_days / 7, 1), np.nan), from_pandas=True))
    ok = ctx.present("first_request_ts", profile, p_prof)
    frt = ctx.corrupt_ts((ctx.t - np.round(age_days * DAY)).astype(np.int64)).astype(np.float64)
    ctx.put("first_request_ts", pa.array(np.where(ok, frt, np.nan), from_pandas=True))
    ok = ctx.present("avg_act_days", profile, p_prof)
    ctx.put("avg_act_days", pa.array(np.where(ok, np.round(rng.uniform(0, 7, n), 2), np.nan), from_pandas=True))
    _ad_formats(ctx, profile)
    _user_bundles(ctx, profile)


def _hour_ratio(ctx: _Ctx, valid: np.ndarray) -> None:
    rng, n = ctx.rng, ctx.n
    k = np.where(valid, rng.binomial(6, 0.5, n), 0)
    parent = np.concatenate([np.repeat(np.arange(n), k), np.flatnonzero(valid)])
    hrs = np.concatenate([(ctx.hour + rng.integers(-6, 7, k.sum())) % 24, np.full(valid.sum(), ctx.hour)])
    parent, key, counts = dedupe_entries(parent, hrs, 24, n)
    w = rng.gamma(1.0, 1.0, len(parent)) + 0.05
    ratio = np.round(w / np.bincount(parent, weights=w, minlength=n)[parent], 4)
    _fmap(ctx, "hour_ratio", counts, take_strings(ctx.vocab.hours, key), ratio, valid)


def _ad_formats(ctx: _Ctx, profile: np.ndarray) -> None:
    """cpm / ctr maps keyed by ad format b/i/r, with percentile-rank twins sharing the keys."""
    rng, v = ctx.rng, ctx.vocab
    p_prof = BLOCK_PRESENCE["profile"][0]
    cpm_ok = ctx.present("cpm", profile, p_prof)
    ctr_ok = ctx.present("ctr", cpm_ok, 1 - NULL_TARGETS["cpm"])
    fmt_cdf = np.array([0.45, 0.8, 1.0])
    for base, ok, draw in (("cpm", cpm_ok, lambda m: np.round(rng.lognormal(0.5, 0.8, m), 4)),
                           ("ctr", ctr_ok, lambda m: np.round(rng.beta(1, 60, m), 5))):
        parent, key, counts = _ragged_keys(ctx, ok, 0.8, 3, fmt_cdf, 3, empty=ctx.empty(base, ok))
        keys = take_strings(v.formats, key)
        _fmap(ctx, base, counts, keys, draw(len(parent)), ok)
        _fmap(ctx, f"{base}_pct_rk", counts, keys, np.round(rng.random(len(parent)), 4), ok)


def _user_bundles(ctx: _Ctx, profile: np.ndarray) -> None:
    """The user's app set (latent) feeds lists, category mixes, first-seen maps and rwd_prank."""
    v, rng, n = ctx.vocab, ctx.rng, ctx.n
    p_prof = BLOCK_PRESENCE["profile"][0]
    parent, key, counts = _ragged_keys(ctx, profile, 6.0, 40, v.bundle_cdf, N_USER_BUNDLES)
    lst_type = ctx.types["user_bundles"]
    ub_ok = ctx.present("user_bundles", profile, p_prof)
    _list_subset(ctx, "user_bundles", parent, key, ub_ok, 1.0, lst_type)
    _list_subset(ctx, "user_bundles_l28d", parent, key, ub_ok, 0.45, lst_type)
    _list_subset(ctx, "bundles_ins", parent, key, ctx.present("bundles_ins", profile, p_prof), 0.25, lst_type)
    _list_subset(ctx, "new_bundles", parent, key, ctx.present("new_bundles", profile, p_prof), 0.15, lst_type)

    bc_ok = ctx.present("bcat", profile, p_prof)
    for col, grp, n_grp, pool in (("bundles_cat", v.bundle_cat, len(v.categories), v.categories),
                                  ("bundles_cat_bottom_taxonomy", v.bundle_tax, len(v.taxonomies), v.taxonomy_keys)):
        keep = bc_ok[parent]
        p, g, c, cnt = _group_by(parent[keep], grp[key[keep]], n_grp, n, np.ones(keep.sum()), "sum")
        _fmap(ctx, col, c, take_strings(pool, g), cnt, bc_ok)
        share_col = "bcat" if col == "bundles_cat" else "bcat_bottom_taxonomy"
        drop = ctx.empty(share_col, bc_ok)[p]
        tot = np.bincount(p, weights=cnt, minlength=n)
        c2 = np.bincount(p[~drop], minlength=n).astype(np.int64)
        _fmap(ctx, share_col, c2, take_strings(pool, g[~drop]), np.round(cnt / tot[p], 4)[~drop], bc_ok)

    fr_ok = ctx.present("first_request_ts_bundle", profile, p_prof)
    keep = fr_ok[parent]
    fp, fk = parent[keep], key[keep]
    ts = ctx.past_ts(60.0, len(fp))
    _fmap(ctx, "first_request_ts_bundle", np.bincount(fp, minlength=n), take_strings(v.bundles, fk),
          ctx.corrupt_ts(ts), fr_ok)
    p, g, c, first = _group_by(fp, v.bundle_tax[fk], len(v.taxonomies), n, ts.astype(np.float64), "min")
    day = ctx.corrupt_ts((first.astype(np.int64) // DAY) * DAY)
    _fmap(ctx, "first_request_ts_category_bottom_taxonomy", c, take_strings(v.taxonomy_keys, g), day, fr_ok)

    rw_ok = ctx.present("rwd_prank", profile, p_prof)
    rp, rk, rc = _ragged_keys(ctx, rw_ok, 1.0, 5, v.bundle_cdf, N_USER_BUNDLES, empty=ctx.empty("rwd_prank", rw_ok))
    _fmap(ctx, "rwd_prank", rc, take_strings(v.bundles, rk), np.round(rng.random(len(rp)), 4), rw_ok)


def _list_subset(ctx: _Ctx, name: str, parent: np.ndarray, key: np.ndarray, valid: np.ndarray,
                 keep_p: float, type_: pa.DataType) -> None:
    """A list<string> column holding a random subset of the user's app set (may be empty)."""
    keep = valid[parent] & (ctx.rng.random(len(parent)) < keep_p)
    empty = ctx.empty(name, valid)
    keep &= ~empty[parent]
    p = parent[keep]
    ctx.put(name, list_array(np.bincount(p, minlength=ctx.n).astype(np.int64),
                             take_strings(ctx.vocab.bundles, key[keep]), valid, type_))


def _engagement(ctx: _Ctx, engaged: np.ndarray) -> None:
    """Sessions / durations per app, and the per-app action maps (map of maps)."""
    v, rng = ctx.vocab, ctx.rng
    p_eng = BLOCK_PRESENCE["engagement"][0]
    ok = ctx.present("avg_daily_sessions", engaged, p_eng)
    parent, key, counts = _ragged_keys(ctx, ok, 2.2, 20, v.bundle_cdf, N_USER_BUNDLES,
                                       empty=ctx.empty("avg_daily_sessions", ok))
    keys = take_strings(v.bundles, key)
    _fmap(ctx, "avg_daily_sessions", counts, keys, np.minimum(1 + rng.poisson(0.5, len(parent)), 18).astype(float), ok)
    _fmap(ctx, "avg_duration", counts, keys, np.round(rng.lognormal(4.0, 1.0, len(parent)), 1), ok)

    parent, key, counts = _ragged_keys(ctx, engaged, 1.2, 10, v.bundle_cdf, N_USER_BUNDLES)
    n_act = len(v.actions)
    has = rng.random((len(parent), n_act)) < np.array([0.7, 0.35, 0.6, 0.12])
    has[~has.any(axis=1), 2] = True  # every app entry has at least an "open"
    inner_counts = has.sum(axis=1)
    act = np.tile(np.arange(n_act), len(parent))[has.ravel()]
    inner_keys = take_strings(v.actions, act)
    for col, vals in (("user_actions_bundles_action_count", 1 + rng.poisson(2.0, len(act))),
                      ("user_actions_bundles_action_last_timestamp", ctx.corrupt_ts(ctx.past_ts(10.0, len(act))))):
        t = ctx.types[col]
        inner = map_array(inner_counts, inner_keys, pa.array(vals), np.ones(len(parent), bool), t.item_type)
        ctx.put(col, map_array(counts, take_strings(v.bundles, key), inner, engaged, t))


def _installs(ctx: _Ctx, installs: np.ndarray) -> None:
    """Install history: last install per app and category (day-aligned), the scalar last_ins."""
    v, rng, n = ctx.vocab, ctx.rng, ctx.n
    parent, key, counts = _ragged_keys(ctx, installs, 0.8, 6, v.bundle_cdf, N_USER_BUNDLES)
    ts = ctx.past_ts(15.0, len(parent))
    _fmap(ctx, "last_install_ts_bundle", counts, take_strings(v.bundles, key), ctx.corrupt_ts(ts), installs)
    p, g, c, last = _group_by(parent, v.bundle_cat[key], len(v.categories), n, ts.astype(np.float64), "max")
    _fmap(ctx, "last_install_ts_category", c, take_strings(v.categories, g),
          ctx.corrupt_ts((last.astype(np.int64) // DAY) * DAY), installs)
    last_ins = ctx.corrupt_ts(segment_max(parent, ts.astype(np.float64), n, 0.0).astype(np.int64))
    ctx.put("last_ins", pa.array(np.where(installs, last_ins.astype(np.float64), np.nan), from_pandas=True))
    ok = ctx.present("avg_days_ins", installs, BLOCK_PRESENCE["installs"][0])
    ctx.put("avg_days_ins", pa.array(np.where(ok, np.round(rng.gamma(1.5, 8.0, n), 2), np.nan), from_pandas=True))


def _history(ctx: _Ctx, hist: np.ndarray) -> None:
    """Purchase history: spend / buys per app aggregated to category, taxonomy and advertiser."""
    v, rng, n, lat = ctx.vocab, ctx.rng, ctx.n, ctx.lat
    p_hist = BLOCK_PRESENCE["history"][0]
    own = rng.random(n) < 0.45  # retargeting: the user already bought in the advertised app
    parent, key, counts = _ragged_keys(ctx, hist, 0.6, 4, v.bundle_cdf, N_USER_BUNDLES,
                                       forced=lat["adv_bundle"], forced_rows=own)
    spend = np.round(rng.lognormal(2.0, 1.5, len(parent)), 2) + 0.01
    buys = (1 + rng.poisson(0.6 + 0.35 * np.log1p(spend))).astype(np.float64)
    keys = take_strings(v.bundles, key)
    _fmap(ctx, "iap_revenue_usd_bundle", counts, keys, spend, hist)
    _fmap(ctx, "num_buys_bundle", counts, keys, buys, hist)
    for suffix, grp, pool in (("category", v.bundle_cat, v.categories),
                              ("category_bottom_taxonomy", v.bundle_tax, v.taxonomy_keys)):
        p, g, c, s = _group_by(parent, grp[key], len(pool), n, spend, "sum")
        _fmap(ctx, f"iap_revenue_usd_{suffix}", c, take_strings(pool, g), np.round(s, 2), hist)
        p, g, c, b = _group_by(parent, grp[key], len(pool), n, buys, "sum")
        _fmap(ctx, f"num_buys_{suffix}", c, take_strings(pool, g), b, hist)

    wh = ctx.present("whale_users_bundle_revenue_prank", hist, p_hist)
    sel = wh[parent]
    wp, wk, ws, wb = parent[sel], keys.filter(pa.array(sel)), spend[sel], buys[sel]
    wc = np.bincount(wp, minlength=n).astype(np.int64)
    rev_rank = np.round(1 - (1 - rng.random(len(wp))) ** (1 + np.log1p(ws) / 2.5), 4)
    buy_rank = np.round(1 - (1 - rng.random(len(wp))) ** (1 + np.log1p(wb)), 4)
    _fmap(ctx, "whale_users_bundle_revenue_prank", wc, wk, rev_rank, wh)
    _fmap(ctx, "whale_users_bundle_num_buys_prank", wc, wk, buy_rank, wh)
    _fmap(ctx, "whale_users_bundle_total_revenue", wc, wk, np.round(ws * rng.lognormal(1.0, 0.5, len(wp)), 2), wh)
    _fmap(ctx, "whale_users_bundle_total_num_buys", wc, wk, wb + rng.poisson(2.0, len(wp)), wh)
    _last_buys(ctx, hist, parent, key, keys)
    _advertiser(ctx, hist, parent, key, spend)


def _last_buys(ctx: _Ctx, hist: np.ndarray, parent: np.ndarray, key: np.ndarray, keys: pa.Array) -> None:
    v, n = ctx.vocab, ctx.n
    ok = ctx.present("last_buy", hist, BLOCK_PRESENCE["history"][0])
    sel = ok[parent]
    lp, lk = parent[sel], key[sel]
    ts = ctx.past_ts(20.0, len(lp))
    _fmap(ctx, "last_buy_ts_bundle", np.bincount(lp, minlength=n).astype(np.int64), keys.filter(pa.array(sel)),
          ctx.corrupt_ts(ts), ok)
    p, g, c, last = _group_by(lp, v.bundle_cat[lk], len(v.categories), n, ts.astype(np.float64), "max")
    _fmap(ctx, "last_buy_ts_category", c, take_strings(v.categories, g),
          ctx.corrupt_ts((last.astype(np.int64) // DAY) * DAY), ok)
    last_buy = ctx.corrupt_ts(segment_max(lp, ts.astype(np.float64), n, 0.0).astype(np.int64))
    ctx.put("last_buy", pa.array(np.where(ok, last_buy.astype(np.float64), np.nan), from_pandas=True))


def _advertiser(ctx: _Ctx, hist: np.ndarray, parent: np.ndarray, key: np.ndarray, spend: np.ndarray) -> None:
    """rev_by_adv (spend summed per advertiser) and the advertiser-action maps."""
    v, rng, n = ctx.vocab, ctx.rng, ctx.n
    p_hist = BLOCK_PRESENCE["history"][0]
    ok = ctx.present("rev_by_adv", hist, p_hist)
    sel = ok[parent]
    p, g, c, s = _group_by(parent[sel], v.bundle_advertiser[key[sel]], len(v.advertisers), n, spend[sel], "sum")
    _fmap(ctx, "rev_by_adv", c, take_strings(v.advertisers, g), np.round(s, 2), ok)

    ok = ctx.present("advertiser_actions_action_count", hist, p_hist)
    n_act = len(v.actions)
    has = (rng.random((n, n_act)) < np.array([0.8, 0.5, 0.6, 0.3])) & ok[:, None]
    has[ok & ~has.any(axis=1), 0] = True
    counts = has.sum(axis=1).astype(np.int64)
    act = np.tile(np.arange(n_act), n)[has.ravel()]
    ap = np.repeat(np.arange(n), counts)
    keys = take_strings(v.actions, act)
    ts = ctx.past_ts(12.0, len(act))
    _fmap(ctx, "advertiser_actions_action_count", counts, keys, (1 + rng.poisson(1.5, len(act))).astype(float), ok)
    _fmap(ctx, "advertiser_actions_action_last_timestamp", counts, keys, ctx.corrupt_ts(ts), ok)
    last_pos = np.zeros(n, dtype=np.int64)
    order = np.lexsort((ts, ap))  # by row, then time: the last entry per row is the latest action
    o_ap = ap[order]
    is_last = np.r_[o_ap[1:] != o_ap[:-1], True] if len(o_ap) else np.zeros(0, bool)
    last_pos[o_ap[is_last]] = act[order][is_last]
    ctx.put("last_advertiser_action", take_strings(v.actions, last_pos, ok))


def build_features(rng: np.random.Generator, n: int, t: int, hour: int, weekday: int, vocab: Vocab,
                   types: dict[str, pa.DataType], invalid_ts_share: float) -> dict[str, pa.Array]:
    """All feature columns and ``row_id`` of one partition, as Arrow arrays typed by the spec."""
    ctx = _Ctx(rng=rng, n=n, t=t, hour=hour, weekday=weekday, vocab=vocab, types=types,
               invalid_ts_share=invalid_ts_share)
    ctx.put("row_id", uuid4_strings(rng, n))
    _scalars(ctx)
    profile = rng.random(n) < BLOCK_PRESENCE["profile"][0]
    engaged = ctx.present("user_actions_bundles_action_count", profile, BLOCK_PRESENCE["profile"][0])
    installs = ctx.present("last_ins", np.ones(n, bool), 1.0)
    hist = ctx.present("iap_revenue_usd_bundle", profile, BLOCK_PRESENCE["profile"][0])
    _profile(ctx, profile)
    _engagement(ctx, engaged)
    _installs(ctx, installs)
    _history(ctx, hist)
    return ctx.out
