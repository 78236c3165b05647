"""Helpers that test modules import: no tests here."""
