"""Keypoint correspondences (paper §4): descriptors, batched affinity maps, the training loss, propagation
of poses from frame a to frame b, a per-frame feature cache and an inference wrapper.

Modules: ``ops`` (coordinates, descriptors, affinities, map decoding), ``loss`` (eq. 4-5),
``propagation`` (poses of frame a -> frame b), ``inference`` (``CorrespondenceModel``, checkpoint
loading through ``corrtrack.checkpoints``). Every name is importable from ``corrtrack.correspondence``.

Coordinate frames (the names say which one a value is in):
  - image pixels: the original frame, pixel centres, (x, y);
  - input pixels: the network input (a letterboxed or cropped copy of the image); ``affine`` maps image
    -> input (``corrtrack.geometry`` convention, (2, 3));
  - feature cells: the stride-``s`` feature grid (s = 4): ``x_feat = x_input / s``; cell ``(i, j)`` is
    centred on input pixel ``(s * i, s * j)`` (see ``corrtrack.nets.bninception``).
Maps are indexed ``[..., y, x]``.

Nothing here loops over persons or joints in Python: all persons x joints of a batch go through one
gather (descriptors) and one grouped convolution (affinities).
"""
from corrtrack.correspondence.inference import (CorrespondenceModel, FeatureCache, FrameFeatures,
                                                load_correspondence_checkpoint)
from corrtrack.correspondence.loss import correspondence_bce
from corrtrack.correspondence.ops import (SUBPIXEL, affinity, affinity_maps, extract_descriptors, image_to_tensor,
                                          index_to_cells, log_softmax_maps, maps_argmax, nearest_cell, sample_maps,
                                          siamese_maps, softmax_maps, target_cells, to_feature_coords,
                                          to_input_coords)
from corrtrack.correspondence.propagation import Propagation, propagate
from corrtrack.nets.correspondence import (DESCRIPTOR_SAMPLING, RefinementNet, SiameseNet, build_refinement,
                                         build_siamese)
from corrtrack.nets.utils import IMAGE_MEAN, IMAGE_STD, normalize_images

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "SUBPIXEL", "DESCRIPTOR_SAMPLING", "CorrespondenceModel", "FeatureCache",
           "FrameFeatures", "Propagation", "RefinementNet", "SiameseNet", "affinity", "affinity_maps",
           "build_refinement", "build_siamese", "correspondence_bce", "extract_descriptors", "image_to_tensor",
           "index_to_cells", "load_correspondence_checkpoint", "log_softmax_maps", "maps_argmax", "nearest_cell",
           "normalize_images", "propagate", "sample_maps", "siamese_maps", "softmax_maps", "target_cells",
           "to_feature_coords", "to_input_coords"]
