"""The embedded default: real base models that install from PyPI, offline."""

from workbench.catalog.bases import ZOO_BASES, ZooBase, zoo_base_folder

__all__ = ["ZOO_BASES", "ZooBase", "zoo_base_folder"]
