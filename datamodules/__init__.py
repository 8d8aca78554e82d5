from datamodules.topdown import TopDownDataModule, TopDownDataset  # noqa: F401  (pose crops)
from datamodules.pairs import AffinePairDataset, AugmentConfig, PairDataModule, collate_pairs  # noqa: F401
