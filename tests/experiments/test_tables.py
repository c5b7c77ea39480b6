"""`python -m experiments.tables`: every generated table in README.md / BUILD.md matches its committed records."""

from __future__ import annotations

import dataclasses

import pytest

from experiments import readme_tables, tables


def test_every_document_holds_the_tables_its_records_give():
  everything = tables.all_tables()
  assert readme_tables.stale(everything) == [], f"stale tables: run {readme_tables.COMMAND}"
  assert len({t.name for t in everything}) == len(everything)
  for table in everything:  # each names records that exist in the repository
    assert table.sources and all((readme_tables.ROOT / s).exists() for s in table.sources), table


def _document(tmp_path, body: str):
  (tmp_path / "DOC.md").write_text(body, encoding="utf-8")
  return readme_tables.Table("demo", "DOC.md", ("records.json",), lambda: "| a |\n|---|\n| 1 |")


def test_write_replaces_only_the_block_and_check_sees_a_changed_record(tmp_path, capsys):
  table = _document(tmp_path, "intro\n")
  (tmp_path / "DOC.md").write_text(f"intro\n{table.begin}\nold\n{table.end}\ntail\n", encoding="utf-8")
  assert readme_tables.stale([table], tmp_path) == ["demo"]
  assert readme_tables.publish([table], write=True, check=False, root=tmp_path) == 0
  assert (tmp_path / "DOC.md").read_text() == f"intro\n{table.begin}\n| a |\n|---|\n| 1 |\n{table.end}\ntail\n"
  assert readme_tables.publish([table], write=False, check=True, root=tmp_path) == 0
  changed = dataclasses.replace(table, generate=lambda: "| a |\n|---|\n| 2 |")  # a record changed
  assert readme_tables.publish([changed], write=False, check=True, root=tmp_path) == 1
  assert "DOC.md: table 'demo' differs from its records (records.json); run python -m experiments.tables --write" \
      in capsys.readouterr().err


def test_missing_markers_and_duplicate_names_are_refused(tmp_path, capsys):
  table = _document(tmp_path, "no markers here\n")
  assert readme_tables.publish([table], write=True, check=False, root=tmp_path) == 2
  assert "DOC.md has no markers for table 'demo': add the lines" in capsys.readouterr().err
  assert (tmp_path / "DOC.md").read_text() == "no markers here\n"  # nothing written
  with pytest.raises(ValueError, match=r"table names must be unique, got \['demo'\]"):
    readme_tables.render([table, table], tmp_path)


def test_an_unknown_table_name_is_refused_with_the_valid_ones():
  with pytest.raises(ValueError, match="unknown table 'nope'; valid: zoo, "):
    tables.select(["nope"])
