"""The version of midvbatch: here, at the bottom, so that any module can read it without importing the package top."""

__version__ = "0.1.0"
