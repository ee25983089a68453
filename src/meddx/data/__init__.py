"""Data in: image readers, dataset readers, the dataset catalog and downloads."""
