"""deckgen: writes the sections of a sales pitch deck from an opportunity brief."""

__version__ = "0.1.0"
