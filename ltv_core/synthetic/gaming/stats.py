"""The gaming data's statistics, measured on the written files (docs/GENERATOR.md, "Gaming generator").

    python -m ltv_core.synthetic.gaming.stats DIR [--spec config/datasets/gaming_d120.yaml]

prints one JSON object: the seed's statistics (seeds_report §1.2: top 1% of payers ~50% of the
revenue, 98.7% of payers earn on day 0, 1.6% buy on day 0, iOS 75% of top payers vs 60% overall,
US/JP/GB/DE 65/14/11/8%, Samsung 25%) next to the generated data's, and the oracle against a
constant and zero. Vectorised pyarrow/numpy over the matured users of the train root.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ltv_core.spec import DatasetSpec, load_spec

__all__ = ["gaming_statistics", "top_share"]

SEED_STATISTICS = {
    "top1_payer_revenue_share": 0.50, "top6_payer_revenue_share": 0.80, "top20_payer_revenue_share": 0.95,
    "payers_with_day0_revenue": 0.987, "day0_iap_user_share": 0.016, "ios_share": 0.60,
    "ios_share_top1_payers": 0.75, "country_share": {"US": 0.65, "JP": 0.14, "GB": 0.11, "DE": 0.08},
    "samsung_share": 0.25, "d120_missing_share": "nearly half (~3M rows)",
}


def top_share(values: np.ndarray, q: float) -> float:
    """Share of the total held by the top ``q`` of the values (at least one value)."""
    v = np.sort(values)[::-1]
    return float(v[: max(1, int(round(q * len(v))))].sum() / v.sum()) if v.sum() > 0 else 0.0


def _read(root: Path, spec: DatasetSpec, columns: list[str]) -> pa.Table:
    return ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=columns)


def _np(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(t[name].to_numpy(zero_copy_only=False))


def gaming_statistics(out: str | Path, spec_path: str = "config/datasets/gaming_d120.yaml") -> dict[str, Any]:
    """The statistics of the gaming data set written under ``out`` (train root; oracle if present)."""
    spec = load_spec(spec_path)
    out = Path(out)
    cols = [spec.id_column, "platform", "country", "manufacturer", "d0_rev", "d0_ad_rev", "d0_iap_rev",
            spec.primary.revenue]
    t = _read(out / spec.roots.train, spec, cols)
    users = t.num_rows
    d120 = t[spec.primary.revenue]
    matured = np.asarray(d120.is_valid())
    m = t.filter(pa.array(matured))
    y = _np(m, spec.primary.revenue).astype(np.float64)
    d0 = _np(m, "d0_rev").astype(np.float64)
    ios = _np(m, "platform") == "ios"
    payer = y > 0
    order = np.argsort(-y[payer], kind="stable")
    top = order[: max(1, int(round(0.01 * payer.sum())))]
    all_d0 = _np(t, "d0_rev").astype(np.float64)
    ad0 = _np(t, "d0_ad_rev").astype(np.float64)
    iap0 = _np(t, "d0_iap_rev").astype(np.float64)
    country = pc.value_counts(t["country"]).to_pylist()
    stats: dict[str, Any] = {
        "users": users,
        "users_matured_d120": int(matured.sum()),
        "d120_missing_share": round(1 - matured.mean(), 4) if users else None,
        "payer_share_d120": round(float(payer.mean()), 4),
        "payers_with_day0_revenue": round(float((d0[payer] > 0).mean()), 4),
        "day0_iap_user_share": round(float((iap0 > 0).mean()), 4),
        "day0_ad_revenue_share": round(float(ad0.sum() / all_d0.sum()), 4),
        "day0_earners_ads_only": round(float(((ad0 > 0) & (iap0 == 0)).sum() / (all_d0 > 0).sum()), 4),
        "top1_payer_revenue_share": round(top_share(y[payer], 0.01), 4),
        "top6_payer_revenue_share": round(top_share(y[payer], 0.06), 4),
        "top20_payer_revenue_share": round(top_share(y[payer], 0.20), 4),
        "ios_share": round(float((_np(t, "platform") == "ios").mean()), 4),
        "ios_share_top1_payers": round(float(ios[payer][top].mean()), 4),
        "country_share": {c["values"]: round(c["counts"] / users, 4)
                          for c in sorted(country, key=lambda c: -c["counts"])[:4]},
        "samsung_share": round(float((_np(t, "manufacturer") == "Samsung").mean()), 4),
        "mean_d120": round(float(y.mean()), 4),
        "payer_median_d120": round(float(np.median(y[payer])), 4),
        "payer_p99_d120": round(float(np.quantile(y[payer], 0.99)), 2),
        "max_d120": round(float(y.max()), 2),
    }
    if spec.oracle and (out / spec.oracle / "train").exists():
        h = spec.labels.primary
        o = _read(out / spec.oracle / "train", spec, [spec.id_column, f"oracle_log1p_{h}", f"oracle_mean_{h}"])
        ids = m[spec.id_column].combine_chunks()
        pos = np.asarray(pc.index_in(ids, value_set=o[spec.id_column].combine_chunks()))
        o_log = _np(o, f"oracle_log1p_{h}")[pos]
        ly = np.log1p(y)
        stats["oracle"] = {
            "rmsle_oracle": round(float(np.sqrt(np.mean((o_log - ly) ** 2))), 4),
            "rmsle_constant": round(float(np.sqrt(np.mean((ly - ly.mean()) ** 2))), 4),
            "rmsle_zero": round(float(np.sqrt(np.mean(ly**2))), 4),
            "mean_oracle_mean": round(float(_np(o, f"oracle_mean_{h}")[pos].mean()), 4),
            "mean_d120": round(float(y.mean()), 4),
            "se_mean_d120": round(float(y.std() / np.sqrt(len(y))), 4),
        }
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltv_core.synthetic.gaming.stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="a folder written by `python -m ltv_core generate --spec "
                               "config/datasets/gaming_d120.yaml`")
    p.add_argument("--spec", default="config/datasets/gaming_d120.yaml")
    args = p.parse_args(argv)
    print(json.dumps({"seed": SEED_STATISTICS, "generated": gaming_statistics(args.out, args.spec)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
