"""XIDs and SXids from the kernel log: the record reader, the NVIDIA line parser, the counts."""
