"""Processing algorithms (thin adapters over :mod:`..runtime`)."""


def algorithm_classes():
    """All algorithm classes the provider registers."""
    from .toa_reflectance import ToaReflectanceAlgorithm

    classes = [ToaReflectanceAlgorithm]
    return classes
