"""Shared configuration for the device tests."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vendor: compares with the vendor simulator `xylosim` (skipped when it is not installed)",
    )
