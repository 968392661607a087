"""edgefleet edge agent runtime. Importable and runnable without Django."""

__version__ = "0.1.0"
