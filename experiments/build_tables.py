r"""BUILD.md's scale-out tables, generated from their benchmark records.

Records: `results/new_family_diff.json` (`python benchmarks/family_diff.py`: the lines of the commit that
added the denoising autoencoder), `benchmarks/results/xla_flag_sweep.json` (`python benchmarks/xla_flag_sweep.py`: XLA:CPU's paths on
the HMC trajectory and 2048³ products), `benchmarks/results/device_scaling.json` (`python benchmarks/device_scaling.py`: 1, 2, 4, 8 forced
CPU devices in fresh processes) and `benchmarks/results/gpu_convnet_h200.json` (`python benchmarks/gpu_convnet.py`
on one NVIDIA H200). `python -m experiments.tables --write` writes them; the test suite checks them.
"""

from __future__ import annotations

from experiments import readme_tables

ROOT = readme_tables.ROOT
DEVICE_SCALING = ROOT / "benchmarks" / "results" / "device_scaling.json"
GPU_CONVNET = ROOT / "benchmarks" / "results" / "gpu_convnet_h200.json"
XLA_FLAG_SWEEP = ROOT / "benchmarks" / "results" / "xla_flag_sweep.json"
FAMILY_DIFF = ROOT / "results" / "new_family_diff.json"
FAMILY_FILES = {  # what each file of the denoising autoencoder's commit holds
    "deepvision/models/autoencoder.py": "the Linen module (`W`, `b_v`, `b_h`, `hidden_probs`, the loss)",
    "deepvision/train/autoencoder.py": "its config block and its task (`init_state`, step, evaluations, figures)",
    "deepvision/train/loop.py": "`TRAINERS.register(\"autoencoder\")(autoencoder.train_autoencoder)` and its import",
    "experiments/configs/dae_digits.py": "the experiment (`:smoke` included)",
    "tests/train/test_autoencoder.py": ("closed-form loss, float64 gradient check, noise rate, parameter count, smoke "
                                        "run at K = 1 and 16"),
}
MODE_NAMES = {"bfloat16": "bfloat16", "float32": "float32 (TF32)", "float32_highest": "float32 (`highest`)"}


_load, _rel = readme_tables.load_record, readme_tables.relative


def device_scaling_table(record: dict) -> str:
  """images/s and the ratio to one pmapped device, per device count, for each workload."""
  convnet, rbm = record["results"]["cifar_convnet"], record["results"]["rbm_pcd1"]
  batch = record["global_batch"]
  machine = record["machine"]
  lines = [(f"`{record['command']}` ({record['date'][:10]}, jax {record['jax_version']}, {machine['cores']} cores; "
            f"the machine was {100 * machine['machine_busy_share_during_run']:.0f}% busy during the run, the "
            f"benchmark's own processes included; record `{_rel(DEVICE_SCALING)}`):"), "",
           "| devices | per-device batch | `cifar_convnet` images/s (ratio) | `rbm` PCD-1 images/s (ratio) |",
           "|---|---|---|---|"]
  cell = lambda row: f"{row['images_per_s_median']:,.0f} ({row['ratio_to_1_device']:.2f})" if row else ""
  for key in convnet:
    devices = int(key.split()[0])
    label = "1, plain jit (no pmap)" if "jit" in key else key
    lines.append(f"| {label} | {batch // devices} | {cell(convnet[key])} | {cell(rbm.get(key))} |")
  return "\n".join(lines)


def gpu_convnet_table(record: dict) -> str:
  """Training throughput and achieved FLOP/s per compute mode and batch, against the measured matmul peak."""
  peak = record["matmul_peak"]
  best = max(record["training"], key=lambda row: row["images_per_s_median"])
  lines = [(f"`{record['command']}` ({record['date'][:10]}, {record['device']['kind']}, jax "
            f"{record['versions']['jax']}; record `{_rel(GPU_CONVNET)}`). Measured matmul peak in the same run "
            f"({peak['n']}³): bf16 {peak['bfloat16']['tflops_median']:g} TFLOP/s, float32 at default precision "
            f"{peak['float32_default']['tflops_median']:g}, float32 `highest` {peak['float32_highest']['tflops_median']:g}; "
            f"spec: bf16 {record['spec_peak_tflops']['bf16']:g}, TF32 {record['spec_peak_tflops']['tf32']:g}, "
            f"FP32 {record['spec_peak_tflops']['fp32']:g}."), "",
           "| compute | batch | images/s | ms/step | TFLOP/s | % of measured matmul | % of spec |",
           "|---|---|---|---|---|---|---|"]
  order = {mode: i for i, mode in enumerate(MODE_NAMES)}
  for row in sorted(record["training"], key=lambda r: (order.get(r["mode"], 9), r["batch"])):
    mark = "**" if row is best else ""
    lines.append(f"| {MODE_NAMES.get(row['mode'], row['mode'])} | {row['batch']} | "
                 f"{mark}{row['images_per_s_median']:,.0f}{mark} | {row['ms_per_step_median']:.2f} | "
                 f"{row['achieved_tflops']:.1f} | {100 * row['fraction_of_measured_matmul']:.1f} | "
                 f"{100 * row['fraction_of_spec']:.1f} |")
  speedups = record.get("bfloat16_speedup_over_float32", {})
  if speedups:
    lines += ["", "bfloat16 over float32 (TF32), images/s: " + ", ".join(
        f"{ratio:.2f}× at batch {batch}" for batch, ratio in sorted(speedups.items(), key=lambda kv: int(kv[0])))
        + "."]
  return "\n".join(lines)


def family_diff_table(record: dict) -> str:
  """The files of the commit that added a family, what each holds and the lines it added / removed."""
  lines = [(f"Commit {record['commit']} (\"{record['subject']}\"; `git show --numstat`, record "
            f"`{_rel(FAMILY_DIFF)}` by `{record['command']}`):"), "",
           "| file | what | lines added | removed |", "|---|---|---:|---:|"]
  for f in record["files"]:
    lines.append(f"| `{f['path']}` | {FAMILY_FILES.get(f['path'], '')} | {f['added']} | {f['removed']} |")
  tests = sum(f["added"] for f in record["files"] if f["path"].startswith("tests/"))
  code = sum(f["added"] for f in record["files"] if not f["path"].startswith("tests/"))
  lines += ["", f"{len(record['files'])} files: {code} lines of library and config added, {tests} of tests."]
  return "\n".join(lines)


def xla_flag_sweep_table(record: dict) -> str:
  """One row per XLA flag set: the matrix-product rates and the HMC trajectory against NumPy on 2 BLAS threads."""
  machine = record["machine"]
  best = max(record["sweep"], key=lambda name: record["sweep"][name]["deepvision_over_numpy_blas2"])
  lines = [(f"`{record['command']}` ({record['date'][:10]}, {machine['cores']} cores of {machine['cpu_model']}, "
            f"jax {record['versions']['jax']}; {record['rounds']} rounds per run; record `{_rel(XLA_FLAG_SWEEP)}`):"),
           "", ("| XLA:CPU path | flags | jax.numpy float32 GFLOP/s | jax.numpy bfloat16 GFLOP/s | NumPy float32 GFLOP/s "
                "| HMC trajectory, deepvision ms | NumPy 2 BLAS threads ms | deepvision / NumPy |"),
           "|---|---|---:|---:|---:|---:|---:|---:|"]
  for name, row in record["sweep"].items():
    mark = "**" if name == best else ""
    lines.append(f"| {name.replace('_', ' ')} | `{row['xla_flags'] or '(none)'}` | {row['jax_float32_gflops']:.0f} | "
                 f"{row['jax_bfloat16_gflops']:.0f} | {row['numpy_float32_gflops']:.0f} | "
                 f"{row['deepvision_ms_per_trajectory']:.2f} | {row['numpy_blas2_ms_per_trajectory']:.2f} | "
                 f"{mark}{row['deepvision_over_numpy_blas2']:.2f}×{mark} |")
  return "\n".join(lines)


TABLES = (
    readme_tables.Table("new-family-diff", "BUILD.md", (_rel(FAMILY_DIFF),), lambda: family_diff_table(_load(FAMILY_DIFF))),
    readme_tables.Table("xla-flag-sweep", "BUILD.md", (_rel(XLA_FLAG_SWEEP),),
                        lambda: xla_flag_sweep_table(_load(XLA_FLAG_SWEEP))),
    readme_tables.Table("device-scaling", "BUILD.md", (_rel(DEVICE_SCALING),),
                        lambda: device_scaling_table(_load(DEVICE_SCALING))),
    readme_tables.Table("gpu-convnet", "BUILD.md", (_rel(GPU_CONVNET),),
                        lambda: gpu_convnet_table(_load(GPU_CONVNET))),
)
