"""Tests of the skinanalysis package (a package, so that its conftest does not
shadow the conftest module that tests/emulator imports from)."""
