"""Packages of the one ``splice`` distribution: every package under each top-level folder, as ``splice.<folder>...``.

Everything else is in pyproject.toml; setuptools' ``packages.find`` cannot add the ``splice.`` prefix that the
folder mapping needs, so the list is computed here instead of kept by hand.
"""

from setuptools import find_packages, setup

PARTS = ("server", "testing", "lsp", "scheduler", "dashboard")

setup(
    package_dir={f"splice.{part}": part for part in PARTS},
    packages=[f"splice.{part}{'.' + sub if sub else ''}" for part in PARTS for sub in ["", *find_packages(part)]],
)
