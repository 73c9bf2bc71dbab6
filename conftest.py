"""Root conftest: lets `pytest` run from any directory."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # nbval opens the sanitize file relative to the current directory, not the rootdir.
    sanitize = getattr(config.option, "nbval_sanitize_with", None)
    if sanitize:
        config.option.nbval_sanitize_with = str(config.rootpath / sanitize)
