from tests.catalogue import shipped_catalogue

__all__ = ["shipped_catalogue"]
