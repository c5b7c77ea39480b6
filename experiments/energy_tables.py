r"""The README's RBM, DBN and gated-MRF figures, generated from the committed records of whole launcher runs.

  python -m experiments.energy_tables            # print
  python -m experiments.energy_tables --write    # replace the blocks in README.md
  python -m experiments.energy_tables --check    # exit 1 if README.md's blocks differ from the records

Records: `results/energy/NAME.json`, one per config, each written by
`python benchmarks/seed_runs.py --config=NAME --seeds ... --out_dir results/energy` (every seed a whole
`python -m experiments.main` run in a fresh process: its final metrics record, wall time and how much of
the CPU other processes took meanwhile; the exact command, resolved config, machine, versions and commit).
Wall times carry the share of the CPU that other processes took when it exceeds `BUSY_NOTE_SHARE`: the
machine the records come from was shared. The test suite checks that README.md holds these blocks.
"""

from __future__ import annotations

import pathlib
import statistics
from collections.abc import Sequence

from deepvision.data.occlusion import square_side
from deepvision.diagnostics.image_stats import TABLE_COLUMNS as IMAGE_STATISTICS_COLUMNS
from experiments import readme_tables

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDS = ROOT / "results" / "energy"
BUSY_NOTE_SHARE = readme_tables.BUSY_SHARE  # other processes' CPU share above which a wall time says so




# ----------------------------------------------------------------------------- formatting


def load(name: str, records_dir: pathlib.Path = RECORDS) -> dict:
  """The record `records_dir/NAME.json`."""
  return readme_tables.load_record(records_dir / f"{name}.json")


def number(value: float, digits: int = 2) -> str:
  """`value` with `digits` decimals and a typographic minus: −24.41."""
  return f"{value:.{digits}f}".replace("-", "−")


def bounds(low: float, high: float, digits: int = 2) -> str:
  """'[−24.51, −24.30]'."""
  return f"[{number(low, digits)}, {number(high, digits)}]"


def percent(value: float) -> str:
  return f"{100 * value:.2f}%"


def mean_std(values: Sequence[float], digits: int = 3, scale: float = 1.0, bold: bool = False) -> str:
  """'0.888 ± 0.002' (sample std over seeds); just the mean when the seeds agree exactly or there is one."""
  mean = scale * statistics.mean(values)
  text = f"**{number(mean, digits)}**" if bold else number(mean, digits)
  if len(values) > 1 and len(set(values)) > 1:
    text += f" ± {scale * statistics.stdev(values):.{digits}f}"
  return text


def other_share(seed: dict) -> float | None:
  """The share of all cores that other processes took during this seed's run (None: not measured)."""
  return seed.get("other_processes_cpu_share")


def wall_time(seeds: Sequence[dict]) -> str:
  """'38.5 s' (mean over `seeds`), with '(other processes: 72% of the CPU)' when they took more than
  `BUSY_NOTE_SHARE` on average."""
  text = f"{statistics.mean(s['wall_seconds'] for s in seeds):.1f} s"
  shares = [other_share(s) for s in seeds]
  if all(share is not None for share in shares) and statistics.mean(shares) > BUSY_NOTE_SHARE:
    text += f" (other processes: {100 * statistics.mean(shares):.0f}% of the CPU)"
  return text


def provenance(record: dict) -> str:
  """'Each seed: `COMMAND`. Record `results/energy/NAME.json`, written by `RECORD_COMMAND` on ... .'"""
  machine, seeds = record["machine"], record["seeds"]
  runs = "Each seed" if len(seeds) > 1 else f"The run (S = {seeds[0]['seed']})"
  return (f"{runs}: `{record['command']}`. Record `results/energy/{record['name']}.json`, written by "
          f"`{record['record_command']}` on {machine['cores']} cores of {machine['cpu_model']}, "
          f"{record['date'][:10]}.")


def _points(value: float) -> str:
  """'+1.2', '−0.4', '0.0' (a difference in points, one decimal)."""
  text = f"{value:+.1f}"
  return "0.0" if text in ("+0.0", "-0.0") else text.replace("-", "−")


def _seed_list(record: dict) -> str:
  return ", ".join(str(s["seed"]) for s in record["seeds"])


def _per_seed(values: Sequence[float], fmt) -> str:
  return " / ".join(fmt(v) for v in values)


# ----------------------------------------------------------------------------- RBMs and the DBN


def rbm_digits(record: dict) -> str:
  """One row per seed (test log-likelihood and log Z by AIS with ±3σ bounds, pseudo-likelihood, features +
  logistic regression, wall time), a mean ± std row, and the raw pixels' accuracy on the same split."""
  finals = [s["final"] for s in record["seeds"]]
  first = finals[0]
  rows = [(f"`rbm_digits` (seeds {_seed_list(record)}), trained on the 1,077 training "
           f"digits; log-likelihood in nats per 8×8 image, by AIS ({first['ais_temperatures']:,} temperatures, "
           f"{first['ais_runs']} runs) with its ±3σ bounds:"), "",
          ("| seed | test log-likelihood [bounds] | log Z (AIS) [bounds] | test pseudo-likelihood | "
           "features + logistic regression (test) | wall time |"),
          "|---|---|---|---|---|---|"]
  for seed, f in zip(record["seeds"], finals):
    rows.append(f"| {seed['seed']} | {number(f['test/log_likelihood'])} "
                f"{bounds(f['test/log_likelihood_lower'], f['test/log_likelihood_upper'])} | "
                f"{number(f['log_z'])} {bounds(f['log_z_lower'], f['log_z_upper'])} | "
                f"{number(f['test/pseudo_likelihood'])} | {percent(f['test/feature_accuracy'])} | "
                f"{wall_time([seed])} |")
  column = lambda key: [f[key] for f in finals]
  rows.append(f"| **mean ± std** | {mean_std(column('test/log_likelihood'), 2, bold=True)} | | "
              f"{mean_std(column('test/pseudo_likelihood'), 2, bold=True)} | "
              f"{mean_std(column('test/feature_accuracy'), 2, 100, bold=True)}% | {wall_time(record['seeds'])} |")
  pixels = column("test/pixel_accuracy")
  rows += ["", (f"Logistic regression on the raw pixels of the same split (same L2 search): "
                f"{mean_std(pixels, 2, 100)}% on test. {provenance(record)}")]
  return "\n".join(rows)


def grbm_patches(record: dict) -> str:
  """One sentence: log Z by AIS with its bounds and the log-likelihood of the three splits."""
  seed = record["seeds"][0]
  f = seed["final"]
  return (f"`grbm_patches` (seed {seed['seed']}): log Z (AIS) {number(f['log_z'])} "
          f"{bounds(f['log_z_lower'], f['log_z_upper'])}; log-likelihood per standardised 8×8 patch "
          f"{number(f['train/log_likelihood'], 1)} (training patches), {number(f['val/log_likelihood'], 1)} "
          f"(validation photograph, scikit-learn's *china*), {number(f['test/log_likelihood'], 1)} (test "
          f"photograph, *flower*); wall time {wall_time([seed])}. {provenance(record)}")


def _seeds_won(wins: Sequence[bool]) -> str:
  """'every seed', 'no seed' or '2 of 3 seeds'."""
  return "every seed" if all(wins) else ("no seed" if not any(wins) else f"{sum(wins)} of {len(wins)} seeds")


def dbn_digits(record: dict) -> str:
  """One paragraph: fine-tuned from the DBN against the same MLP from random weights, test and validation,
  per seed and mean, how many seeds pre-training wins, and the layer-1 RBM's test log-likelihood (AIS)."""
  finals = [s["final"] for s in record["seeds"]]
  col = lambda key: [f[key] for f in finals]
  test, test_scratch = col("test/accuracy"), col("test/accuracy_scratch")
  val, val_scratch = col("val/accuracy"), col("val/accuracy_scratch")
  pct = lambda v: f"{100 * v:.2f}"
  mean_difference = 100 * (statistics.mean(test) - statistics.mean(test_scratch))
  wins_val = [a > b for a, b in zip(val, val_scratch)]
  wins_test = [a > b for a, b in zip(test, test_scratch)]
  ties = lambda a, b: sum(x == y for x, y in zip(a, b))
  tie_note = lambda a, b: f" ({ties(a, b)} tied)" if ties(a, b) else ""
  layer_1 = col("layer_1/test/log_likelihood")
  return (f"`dbn_digits` (seeds {_seed_list(record)}): the MLP fine-tuned from the DBN "
          f"scores {_per_seed(test, pct)}% on test (mean {pct(statistics.mean(test))}%), the same MLP from "
          f"random weights {_per_seed(test_scratch, pct)}% (mean {pct(statistics.mean(test_scratch))}%); on "
          f"validation {_per_seed(val, pct)}% against {_per_seed(val_scratch, pct)}%. Pre-training wins on "
          f"validation for {_seeds_won(wins_val)}{tie_note(val, val_scratch)} and on test for "
          f"{_seeds_won(wins_test)}{tie_note(test, test_scratch)}; its mean test accuracy is "
          f"{number(abs(mean_difference))} points {'higher' if mean_difference >= 0 else 'lower'}. The layer-1 "
          f"RBM reaches a test log-likelihood of {_per_seed(layer_1, number)} nats (AIS; mean "
          f"{number(statistics.mean(layer_1))}). Wall time per run (both layers, both fine-tunings, AIS): "
          f"{wall_time(record['seeds'])}. {provenance(record)}")


# ----------------------------------------------------------------------------- gated MRFs


def _gated_mrf_label(record: dict) -> str:
  """'mcRBM, 64 factors → 16 covariance units, 32 mean units' from the resolved config ('' without one)."""
  config = record.get("resolved_config") or {}
  sizes = config.get("model_kwargs", {})
  if not sizes:
    return ""
  label = (f" ({_model_name(record)}, {sizes['n_factors']} factors → {sizes['n_cov']} covariance units, "
           f"{sizes['n_mean']} mean units")
  return label + (f", γ = {sizes['gamma']:g})" if sizes.get("gamma") is not None else ")")


SPLITS = ("test", "val", "train")


def gated_mrf_likelihood(*records: dict) -> str:
  """Held-out log-likelihood per whitened patch of each gated MRF (test with its ±3σ bounds, validation,
  training) beside the Gaussian (PCA) model of the same whitened patches; the best of each column in bold;
  then which held-out photographs each model beats the Gaussian on."""
  finals = [r["seeds"][0]["final"] for r in records]
  gaussian = {split: finals[0][f"{split}/gaussian_log_likelihood"] for split in SPLITS}
  best = {split: max([gaussian[split]] + [f[f"{split}/log_likelihood"] for f in finals]) for split in SPLITS}
  cell = lambda value, split, digits: f"**{number(value, digits)}**" if value == best[split] else number(value, digits)
  rows = ["| model | test photograph [bounds] | validation photograph | training patches | wall time |",
          "|---|---|---|---|---|"]
  for record, f in zip(records, finals):
    rows.append(f"| `{record['name']}`{_gated_mrf_label(record)} | "
                f"{cell(f['test/log_likelihood'], 'test', 2)} "
                f"{bounds(f['test/log_likelihood_lower'], f['test/log_likelihood_upper'])} | "
                f"{cell(f['val/log_likelihood'], 'val', 1)} | {cell(f['train/log_likelihood'], 'train', 1)} | "
                f"{wall_time(record['seeds'][:1])} |")
  rows.append(f"| Gaussian (PCA) model | {cell(gaussian['test'], 'test', 2)} | {cell(gaussian['val'], 'val', 1)} | "
              f"{cell(gaussian['train'], 'train', 1)} | |")
  groups = {}  # where each model beats the Gaussian -> the models
  for record, f in zip(records, finals):
    held_out = [name for split, name in (("test", "test"), ("val", "validation"))
                if f[f"{split}/log_likelihood"] > gaussian[split]]
    where = ("both held-out photographs" if len(held_out) == 2 else
             (f"the {held_out[0]} photograph only" if held_out else "neither held-out photograph"))
    groups.setdefault(where, []).append(f"`{record['name']}`")
  beats = [f"{' and '.join(names)} beat{'s' if len(names) == 1 else ''} the Gaussian on {where}"
           for where, names in groups.items()]
  return "\n".join([*rows, "", "; ".join(beats) + ". " + " ".join(provenance(r) for r in records)])


MASK_LABELS = {"none": "none", "left_half": "left half", "random_square": "random {side}×{side}",
               "central_square": "central {side}×{side}", "bottom_half": "bottom half"}
FILL_LABELS = {"raw": "none ({baseline})", "gaussian": "Gaussian conditional mean",
               "gmrf": "{model} (HMC, observed pixels clamped)"}
BASELINE_FILLS = {"mean": "training mean", "zero": "occluded = 0"}  # config.occlusion.baseline_fill
INPUTS = ("pixels", "latent", "latent_pixels")
DIGIT_SIDE = 8  # the embedded digits are 8×8


def _model_name(record: dict) -> str:
  model = (record.get("resolved_config") or {}).get("model", "mcrbm")
  return {"mcrbm": "mcRBM", "mpot": "mPoT"}.get(model, model)


def _mask_label(kind: str, side: int | None) -> str:
  return MASK_LABELS.get(kind, kind.replace("_", " ")).format(side=side if side is not None else "?")


def _square_side(record: dict, block: str) -> int | None:
  """The random square's side in pixels from the resolved config (an int, or a fraction of the digits' side)."""
  size = (record.get("resolved_config") or {}).get(block, {}).get("square_size")
  return None if size is None else square_side(size, DIGIT_SIDE, DIGIT_SIDE)


def occlusion(record: dict) -> str:
  """Accuracy under occlusion, mean ± std over the seeds, one row per (mask, fill), the best of each mask
  in bold, the fill MSE; then what the gated MRF's fill gains over the raw occluded pixels and over the
  Gaussian conditional mean, per seed."""
  finals = [s["final"] for s in record["seeds"]]
  model = _model_name(record)
  side = _square_side(record, "occlusion")
  baseline_fill = (record.get("resolved_config") or {}).get("occlusion", {}).get("baseline_fill", "mean")
  baseline = BASELINE_FILLS.get(baseline_fill, baseline_fill)
  masks = [m for m in ("none", "left_half", "random_square")
           if any(k.startswith(f"test/accuracy_{m}_") for k in finals[0])]
  col = lambda key: [f[key] for f in finals]
  rows = [(f"| occlusion | fill-in | pixels | {model} latent [σ_c, σ_m] | latent + pixels | fill MSE |"),
          "|---|---|---|---|---|---|"]
  for mask in masks:
    stems = [("—", "none")] if mask == "none" else [
        (FILL_LABELS[fill].format(model=model, baseline=baseline), f"{mask}_{fill}")
        for fill in ("raw", "gaussian", "gmrf")]
    best = max(statistics.mean(col(f"test/accuracy_{stem}_{i}")) for _, stem in stems for i in INPUTS)
    for fill, stem in stems:
      cells = [mean_std(col(f"test/accuracy_{stem}_{i}"), 3,
                        bold=statistics.mean(col(f"test/accuracy_{stem}_{i}")) == best) for i in INPUTS]
      mse = f"test/fill_mse_{stem}"
      rows.append(f"| {_mask_label(mask, side)} | {fill} | " + " | ".join(cells) + " | "
                  + (mean_std(col(mse), 4) if mse in finals[0] else "—") + " |")
  n = len(finals)
  gains, versus, lower_mse = {}, [], []
  for mask in masks[1:]:
    label = _mask_label(mask, side)
    gmrf, raw = col(f"test/accuracy_{mask}_gmrf_latent_pixels"), col(f"test/accuracy_{mask}_raw_pixels")
    gauss = col(f"test/accuracy_{mask}_gaussian_latent_pixels")
    gains[label] = 100 * (statistics.mean(gmrf) - statistics.mean(raw))
    differences = [100 * (a - b) for a, b in zip(gmrf, gauss)]
    versus.append(f"{_points(statistics.mean(differences))} on average ({_per_seed(differences, _points)} "
                  f"seed by seed; {label})")
    lower = sum(a < b for a, b in zip(col(f"test/fill_mse_{mask}_gmrf"), col(f"test/fill_mse_{mask}_gaussian")))
    lower_mse.append(f"{lower} of {n} ({label})")
  return "\n".join([
      f"Seeds {_seed_list(record)}, test accuracy mean ± std; wall time per seed {wall_time(record['seeds'])}:",
      "", *rows, "",
      (f"Filling in with the {model} and classifying from its features and the pixels "
       + (f"beats the raw occluded pixels by {' and '.join(f'{number(g, 1)} points ({m})' for m, g in gains.items())}"
          if all(g > 0 for g in gains.values()) else
          f"scores {' and '.join(f'{_points(g)} points ({m})' for m, g in gains.items())} against the raw "
          "occluded pixels")
       + f". Against the same classifier on the Gaussian conditional-mean fill it "
       f"scores {' and '.join(versus)}, in points; the {model}'s fill has the lower squared error in "
       f"{' and '.join(lower_mse)} seeds. {provenance(record)}")])


GAUSSIANS = (("gaussian", "Gaussian (PCA + residual)"), ("gaussian_full", "Gaussian (full covariance)"))
FLOOR = ("train_mean", "training mean")  # each missing pixel its training mean (records written since it exists)
FACE_MASKS = ("central_square", "bottom_half", "random_square")


def inpainting(record: dict) -> str:
  """Squared error per missing pixel (mean ± standard error over the held-out faces) of the gated MRF, the
  two Gaussians and (when the record has it) the training-mean fill, per mask, the lowest in bold, and the
  paired gain over the better Gaussian; then on how many masks the gated MRF is ahead, and by how many
  standard errors."""
  seed = record["seeds"][0]
  f = seed["final"]
  model = _model_name(record)
  side = (record.get("resolved_config") or {}).get("inpainting", {}).get("square_size")
  masks = [m for m in FACE_MASKS if f"test/mse_gmrf_{m}" in f]
  columns = GAUSSIANS + ((FLOOR,) if all(f"test/mse_{FLOOR[0]}_{m}" in f for m in masks) else ())
  rows = [(f"| mask | {model} | " + " | ".join(label for _, label in columns)
           + " | gain over the better Gaussian (paired) |"), "|---|---|" + "---|" * len(columns) + "---|"]
  ahead, in_errors = [], []
  for mask in masks:
    names = ("gmrf",) + tuple(name for name, _ in columns)
    lowest = min(f[f"test/mse_{name}_{mask}"] for name in names)
    cells = []
    for name in names:
      value = f[f"test/mse_{name}_{mask}"]
      text = f"{value:.4f}"
      cells.append(f"{f'**{text}**' if value == lowest else text} ± {f[f'test/mse_{name}_{mask}_stderr']:.4f}")
    gain, gain_se = f[f"test/mse_gain_{mask}"], f[f"test/mse_gain_{mask}_stderr"]
    rows.append(f"| {_mask_label(mask, side)} | " + " | ".join(cells) + f" | {number(gain, 4)} ± {gain_se:.4f} |")
    ahead.append(gain > 0)
    in_errors.append(f"{number(gain / gain_se, 1)} ({_mask_label(mask, side)})" if gain_se else "—")
  count = ("every mask" if all(ahead) else
           f"{sum(ahead)} of the {len(ahead)} masks" if any(ahead) else "no mask")
  return "\n".join([
      f"Seed {seed['seed']}; wall time {wall_time([seed])}:", "", *rows, "",
      (f"The {model}'s error is below the better Gaussian's on {count}; the paired gain is "
       f"{', '.join(in_errors)} standard errors. {provenance(record)}")])


IMAGE_MODEL_LABELS = {"data": "held-out photographs", "stationary_gaussian": "Gaussian (stationary, FFT)",
                      "wavelet_prior": "marginal wavelet (GG subbands)", "pairwise_mrf": "pair-wise MRF (Student-t)",
                      "field_of_experts": "Field of Experts (8 3×3)", "tiled_mcrbm": "gated MRF (tiled mcRBM, 1 layer)"}


def _significant(value: float) -> str:
  return f"{value:.3g}".replace("-", "−")


def gmrf_images(record: dict) -> str:
  """The image-statistics table of `gmrf_images`: one row per model's 64×64 samples (the held-out
  photographs first), each `image_stats` column and the PSNR of MAP denoising under the model (the noisy
  input's in the first row), as the mean over the seeds (± their standard deviation when there are
  several); the lowest mean KL of each kind in bold; then on how many seeds the gated MRF's derivative KL
  is below the Gaussian's and the FoE's."""
  seeds = record["seeds"]
  finals = [seed["final"] for seed in seeds]
  names = ["data"] + [n for n in IMAGE_MODEL_LABELS if n != "data" and f"stats/{n}/kl_derivative" in finals[0]]
  headers = [header for _, header in IMAGE_STATISTICS_COLUMNS]
  rows = ["| model | " + " | ".join(headers) + " | denoising PSNR (dB) |", "|---|" + "---:|" * (len(headers) + 1)]
  values = {(n, key): [f[f"stats/{n}/{key}"] for f in finals] for n in names for key, _ in IMAGE_STATISTICS_COLUMNS}
  best = {key: min(statistics.mean(values[n, key]) for n in names[1:]) for key in ("kl_derivative", "kl_random")}
  for name in names:
    cells = []
    for key, _ in IMAGE_STATISTICS_COLUMNS:
      v = values[name, key]
      text = _significant(statistics.mean(v))
      if name != "data" and key in best and statistics.mean(v) == best[key]:
        text = f"**{text}**"
      if len(v) > 1 and len(set(v)) > 1:
        text += f" ± {statistics.stdev(v):.2g}"
      cells.append(text)
    psnr = [f["denoise/noisy/psnr"] if name == "data" else f[f"denoise/{name}/psnr"] for f in finals]
    label = mean_std(psnr, 2) + (" (noisy input)" if name == "data" else "")
    rows.append(f"| {IMAGE_MODEL_LABELS[name]} | " + " | ".join(cells) + f" | {label} |")
  images = (record.get("resolved_config") or {}).get("images", {})
  lines = [f"Seed{'s' if len(seeds) > 1 else ''} {_seed_list(record)}; wall time {wall_time(seeds)} per run; "
           f"{images.get('num_samples', '?')} samples of {images.get('size', '?')}×{images.get('size', '?')} per "
           f"model against {images.get('num_reference', '?')} held-out crops; denoising of "
           f"{images.get('num_denoise', '?')} other held-out crops at σ = 25/255:", "", *rows, ""]
  if "tiled_mcrbm" in names:
    below = {other: sum(f["stats/tiled_mcrbm/kl_derivative"] < f[f"stats/{other}/kl_derivative"] for f in finals)
             for other in ("stationary_gaussian", "field_of_experts") if other in names}
    short = {"stationary_gaussian": "the Gaussian's", "field_of_experts": "the FoE's"}
    lines.append("The gated MRF's derivative-histogram KL is below " + " and ".join(
        f"{short[other]} on {count} of {len(finals)} seed{'s' if len(finals) > 1 else ''}"
        for other, count in below.items()) + ". " + provenance(record))
  else:
    lines.append(provenance(record))
  return "\n".join(lines)


# ----------------------------------------------------------------------------- the tables


def _table(name: str, function, *records: str) -> readme_tables.Table:
  """The README block `name`: `function` applied to the records `results/energy/RECORD.json`, in order."""
  return readme_tables.Table(name, "README.md", tuple(f"results/energy/{r}.json" for r in records),
                             lambda: function(*(load(r) for r in records)))


TABLES = (
    _table("rbm-digits", rbm_digits, "rbm_digits"),
    _table("grbm-patches", grbm_patches, "grbm_patches"),
    _table("dbn-digits", dbn_digits, "dbn_digits"),
    _table("gated-mrf-likelihood", gated_mrf_likelihood, "mcrbm_patches", "mpot_patches"),
    _table("gmrf-occlusion", occlusion, "gmrf_digits"),
    _table("gmrf-inpainting", inpainting, "gmrf_faces"),
    _table("gmrf-images", gmrf_images, "gmrf_images"),
)


if __name__ == "__main__":
  readme_tables.run_cli(TABLES)
