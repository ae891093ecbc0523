"""Processing algorithms (thin adapters over :mod:`..runtime`)."""


def algorithm_classes():
    """All algorithm classes the provider registers."""
    from .attention_maps import AttentionMapsAlgorithm
    from .cloud_mask import CloudMaskAlgorithm
    from .install import InstallDependenciesAlgorithm, InstallModelAlgorithm
    from .list_models import ListModelsAlgorithm
    from .orthorectify import OrthorectifyAlgorithm
    from .segment import SegmentAlgorithm
    from .submit_batch import SubmitBatchAlgorithm
    from .toa_reflectance import ToaReflectanceAlgorithm

    classes = [ToaReflectanceAlgorithm, CloudMaskAlgorithm, AttentionMapsAlgorithm, SegmentAlgorithm, ListModelsAlgorithm,
               OrthorectifyAlgorithm, InstallModelAlgorithm, InstallDependenciesAlgorithm, SubmitBatchAlgorithm]
    return classes
