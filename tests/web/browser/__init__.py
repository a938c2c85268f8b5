"""Browser tests (a package, so its conftest.py is imported as browser.conftest and never shadows
tests/web/conftest.py for the modules there that import it as ``conftest``)."""
