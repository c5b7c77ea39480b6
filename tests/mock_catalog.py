"""Test helper: make a TFDS catalog set look prepared, for use with `tfds.testing.mock_data`."""

import os

import tensorflow_datasets as tfds


def write_catalog_metadata(data_dir, name, split_sizes, file_format="array_record"):
  """Writes the dataset_info.json a prepared catalog set would have (no example files)."""
  builder = tfds.builder(name, data_dir=os.fspath(data_dir))
  template = lambda split: tfds.core.ShardedFileTemplate(
      data_dir=builder.data_path, dataset_name=name, split=split, filetype_suffix=file_format
  )
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0, filename_template=template(split))
      for split, n in split_sizes.items()
  ]))
  builder.info.set_file_format(file_format, override=True)
  builder.data_path.mkdir(parents=True, exist_ok=True)
  builder.info.write_to_directory(builder.data_path)
