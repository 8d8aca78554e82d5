from lightning_modules.pose import PoseEstimatorModule  # noqa: F401
from lightning_modules.refine import RefinementModule  # noqa: F401
from lightning_modules.siamese import SiameseModule  # noqa: F401
