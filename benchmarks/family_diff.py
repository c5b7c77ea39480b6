r"""The size of a commit that added a model family: lines added and removed per file (`git show --numstat`).

Writes the record behind BUILD.md's "Adding a model family" table, so its line counts are the commit's, not
typed. Usage (needs the repository's history):
  python benchmarks/family_diff.py [--commit c9d1517] [--out results/new_family_diff.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def numstat(commit: str) -> tuple[str, list[dict]]:
  """The commit's subject and, per file, the lines it added and removed."""
  def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
      raise SystemExit(f"error: git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout
  subject = git("show", "-s", "--format=%s", commit).strip()
  files = []
  for line in git("show", "--numstat", "--format=", commit).splitlines():
    added, removed, path = line.split("\t")
    files.append({"path": path, "added": int(added), "removed": int(removed)})
  return subject, files


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--commit", default="c9d1517")
  parser.add_argument("--out", default=str(ROOT / "results" / "new_family_diff.json"))
  args = parser.parse_args(argv)
  subject, files = numstat(args.commit)
  record = {"commit": args.commit, "subject": subject, "files": files,
            "command": "python benchmarks/family_diff.py" + (f" --commit {args.commit}" if args.commit != "c9d1517"
                                                               else ""),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
  pathlib.Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
  print(json.dumps(record, indent=1))


if __name__ == "__main__":
  main()
