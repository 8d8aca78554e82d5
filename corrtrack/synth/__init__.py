"""The synthetic world: COCO-format images and PoseTrack-format videos of articulated people.

A newcomer, a CI machine and a reviewer have neither COCO nor PoseTrack, so every code path of
corrtrack also runs on this built-in world, written in the exact file layouts of the real datasets
(``python -m corrtrack.synth --out DIR --preset tiny|small|standard|hard [--seed N] [--preview]``).

What is simulated, and how
--------------------------
* **People** (:mod:`.body`): a 3-D stick skeleton with plausible adult / child proportions carrying
  all 19 "world joints" (the 17 COCO joints plus PoseTrack's head_bottom and head_top), posed by joint
  angles (torso lean / twist, head turn, shoulders, elbows, hips, knees), turned by a facing angle and
  projected orthographically at the person's ground-plane scale. Actions: standing, walking, running,
  waving, arms raised, crouching, jumping jacks, dancing, kicking, pointing; gait phase advances with
  the distance walked, in-place actions with time, so joint trajectories are smooth.
* **Looks** (:mod:`.textures`): limbs are tapered capsules with cylinder shading; clothing is always a
  pattern (stripes, checks, plaid, dots, zigzag, noise, camouflage, gradient) in part-local metric
  coordinates, so it moves with the limb; varied skin tones, hair colours and styles (short, long,
  bun, bald, cap), sleeves, shorts, skirts; faces with eyes, mouth and a profile nose; ears.
* **Scenes** (:mod:`.scenes`): a ground-plane camera (far people are small and high), procedural
  backgrounds (street, park, indoor, court, abstract: gradients, noise, buildings, trees, floor tiles
  in perspective), static occluders (poles, bushes, cars, signs, bins, benches), far crowds.
* **Rendering** (:mod:`.render`): painter's algorithm far to near with a per-pixel depth-rank buffer.
  A joint is v=0 outside the image, v=1 when a nearer person or object covers its pixel (or for a
  face point on the far side of the person's own head), v=2 otherwise; other self-occlusion counts
  as visible. Per-person motion blur along the image velocity, camera-pan blur on the background.
* **Videos** (:mod:`.scenes`): walkers entering and leaving, crossing pairs (the near one hides the far
  one for several frames), runners, people who leave the view and come back with the same track id,
  look-alike groups dressed identically (appearance alone is ambiguous), camera pan, zoom, shake and
  whip pans, far crowds under ignore regions.
* **Annotations** (:mod:`.annotate`): COCO keypoints (visible silhouette box, area, polygons), PoseTrack
  2018 per-video files (head boxes, track ids, ``is_labeled`` with unlabelled frames, ignore regions),
  simulated detections whose misses / jitter grow with occlusion and truncation, and a visibility
  sidecar. Files pass pycocotools and the official PoseTrack evaluation (GT vs GT: AP 1, mAP / MOTA 100).

Public API: :func:`generate_world`, :func:`ensure_world`, :data:`PRESETS` (name -> :class:`Preset`).
See ``docs/synthetic_world.md`` for the layout, presets, knobs and what is simulated vs real.
This package is framework-free: numpy, scipy, opencv, pillow, tqdm only.
"""

from __future__ import annotations

from corrtrack.synth.presets import PRESETS, Preset, get_preset
from corrtrack.synth.world import (
    MARKER,
    VERSION,
    ensure_world,
    generate_world,
    labeled_frames,
    posetrack_image_id,
    read_marker,
)

__all__ = [
    "PRESETS",
    "Preset",
    "get_preset",
    "generate_world",
    "ensure_world",
    "read_marker",
    "labeled_frames",
    "posetrack_image_id",
    "MARKER",
    "VERSION",
]
