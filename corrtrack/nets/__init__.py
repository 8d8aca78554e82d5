"""Plain nn.Modules: the BN-Inception trunk, the Siamese and refinement correspondence networks
(and the pose network, ``corrtrack.nets.pose``). Never imports lightning."""
from corrtrack.nets.bninception import BNInception
from corrtrack.nets.correspondence import RefinementNet, SiameseNet, build_refinement, build_siamese
from corrtrack.nets.utils import count_flops, count_parameters, load_pretrained

__all__ = ["BNInception", "SiameseNet", "RefinementNet", "build_siamese", "build_refinement",
           "count_flops", "count_parameters", "load_pretrained"]
