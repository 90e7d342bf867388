"""The package version, in one place: reports and `riskdpo --version` read it here,
so no stage imports the package root for it."""

__version__ = "0.1.0"
