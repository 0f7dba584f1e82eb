"""Thin click commands; see :mod:`convertmodel.cli.main`."""
