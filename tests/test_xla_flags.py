"""The XLA:CPU setting made before JAX starts."""

from deepvision.xla_flags import SINGLE_THREADED_EIGEN, prefer_single_threaded_eigen


def test_adds_the_flag_to_other_flags_and_respects_a_user_choice():
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  prefer_single_threaded_eigen(environ)
  assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {SINGLE_THREADED_EIGEN}"
  prefer_single_threaded_eigen(environ)  # idempotent
  assert environ["XLA_FLAGS"].count("--xla_cpu_multi_thread_eigen") == 1
  chosen = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}
  prefer_single_threaded_eigen(chosen)
  assert chosen == {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}
  empty = {}
  prefer_single_threaded_eigen(empty)
  assert empty == {"XLA_FLAGS": SINGLE_THREADED_EIGEN}


def test_cpu_devices_are_added_to_the_flags_given_or_current(monkeypatch):
  from deepvision.xla_flags import with_cpu_devices  # pylint: disable=g-import-not-at-top
  assert with_cpu_devices(4, "--a=1") == "--a=1 --xla_force_host_platform_device_count=4"
  assert with_cpu_devices(2, "") == "--xla_force_host_platform_device_count=2"
  monkeypatch.setenv("XLA_FLAGS", SINGLE_THREADED_EIGEN)
  assert with_cpu_devices(8) == f"{SINGLE_THREADED_EIGEN} --xla_force_host_platform_device_count=8"
