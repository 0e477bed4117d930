"""lsm benchmarks (pytest-benchmark); a package so the benchmark module can import its conftest."""
