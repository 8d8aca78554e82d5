"""The tracking configuration: one dataclass, the single source of every default.

``experiments/configs/tracking.yaml`` mirrors these fields with the same values (a test checks that they
agree), so the command line (``python -m corrtrack.track``), the training callback and the sweeps track
with the same settings. Overrides are ``key=value`` strings, as on every other command line of the
project. Which value comes from where (paper, authors' release, ours) is documented in docs/tracking.md.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

CUES = ("oks", "flow", "reid", "corr")
BOX_SOURCES = ("gt", "detections", "gt-poses")
SOLVERS = ("greedy", "hungarian")
CORR_VARIANTS = ("paper", "release")
RECOVERY_BOXES = ("joints", "shifted")

# The authors' released tracker (docs/tracking.md, "The release's tracker"): apply with
# ``TrackingConfig.preset("release")`` or ``--preset release`` on the command line.
RELEASE_OVERRIDES: dict[str, Any] = {
    "corr_variant": "release",
    "tau_corr": 0.3,
    "release_min_oks": 0.2,
    "min_candidate_joints": 2,
    "match_joint_threshold": 0.1,
    "min_track_length": 3,
    "duplicate_ratio": 0.6,
    "joint_threshold": 0.3,
    "max_age": 0,
}
# The operating point of the shipped CPU-trained weights (docs/tracking.md, "Operating point of the shipped
# weights"), chosen on the `hard` world's seed-0 val videos only: their refined maps peak low (median 0.008 at
# the true joint), so eq. 6 counts every jointly detected joint (tau_corr 0), and their over-confident pose
# net passes the release's recovery filter on most false recoveries, so the recovery box keeps the source's
# size, a recovered pose must also agree with the joints it was propagated from and score well on average
# (our extensions), and it must overlap the detected poses less (OKS 0.3, not 0.6): a third of the
# recoveries that 0.6 lets through duplicate a person a detection already covers.
SHIPPED_OVERRIDES: dict[str, Any] = {
    "tau_corr": 0.0,
    "recovery_box": "shifted",
    "recovery_max_oks": 0.3,
    "recovery_min_agreement": 0.5,
    "recovery_min_mean_score": 0.65,
}
PRESETS: dict[str, dict[str, Any]] = {"paper": {}, "release": RELEASE_OVERRIDES, "shipped": SHIPPED_OVERRIDES}


class TrackingConfigError(ValueError):
    """An unknown key or a value of the wrong type or range; the message names the key."""


@dataclass(frozen=True)
class TrackingConfig:
    """Every setting of the tracker (paper §5). Defaults are the paper's where it gives one, else the
    authors' release's, else ours (docs/tracking.md lists which is which).

    Candidates: ``boxes`` ("gt" | "detections" | "gt-poses"), ``detection_min_score``; detected poses go
    through OKS-NMS (``nms_oks``, joints above ``nms_joint_threshold`` compared).
    Recovery (paper §5.1): ``recovery`` on/off; a pose of frame f-1 propagated to f keeps the joints whose
    map value is >= ``recovery_corr_threshold``, needs >= ``recovery_min_joints`` of them, gets the box
    of their extent + ``recovery_box_margin`` pixels; the pose re-estimated there is kept when
    >= ``recovery_min_pose_joints`` joints score >= ``recovery_joint_threshold`` and its largest OKS with
    the frame's detected poses is <= ``recovery_max_oks``. ``recovery_from_recovered``: also propagate
    poses that were themselves recovered (off: only detected poses, as the paper says). Our extensions,
    off by default: ``recovery_box`` "shifted" (the source pose's own box moved by the median displacement of
    those joints, instead of their extent: "joints"); ``recovery_min_agreement`` (the OKS of the re-estimated pose with the propagated joints
    its box came from must reach it) and ``recovery_min_mean_score`` (the mean score of its joints must).
    Association (paper §5.2): ``cue``; joints scoring >= ``match_joint_threshold`` take part;
    ``tau_corr`` of eq. 6, which is 0 unless >= ``corr_min_joints`` joints pass it; a match needs a similarity > ``min_sim_<cue>``; ``solver`` greedy (paper) or
    hungarian; ``corr_variant`` "release" swaps eq. 6 for the release's score (``release_min_oks``);
    ``min_candidate_joints``: candidates with fewer joints above ``match_joint_threshold`` are dropped.
    Tracks: ``max_age`` processed frames unmatched before a track ends (0: at its first miss);
    ``duplicate_ratio`` (release variant only) drops unmatched near-copies of a matched pose.
    Merge ("Ours + Merge"): ``merge`` joins a track that ended with one that starts at most
    ``merge_gap`` frames later when eq. 6 across the gap is >= ``merge_threshold``.
    Output: joints scoring below ``joint_threshold`` are removed (a person left without joints too);
    tracks with fewer than ``min_track_length`` poses are dropped.
    Networks and inputs: ``input_size`` of the correspondence letterbox, ``flow_preset`` of OpenCV DIS,
    ``flow_max_side`` (downscale frames for the flow), ``labeled_only`` (process only the frames that are
    labelled in the GT file; detections are otherwise tracked on every frame).
    Built-in person detector of a plain video (``--video`` without ``--detections``; OpenCV's HOG people
    detector): frames scaled by ``hog_upscale`` first (the detector's window is 64x128 pixels, so people
    shorter than about 100 pixels need > 1), pyramid step ``hog_scale``, window stride ``hog_stride``
    pixels, box NMS at IoU ``hog_nms_iou``; its boxes then pass ``detection_min_score`` like any detection.
    """

    cue: str = "corr"
    boxes: str = "gt"
    detection_min_score: float = 0.5
    nms_oks: float = 0.7
    nms_joint_threshold: float = 0.05
    recovery: bool = True
    recovery_corr_threshold: float = 0.1
    recovery_min_joints: int = 3
    recovery_box_margin: float = 10.0
    recovery_box: str = "joints"
    recovery_min_pose_joints: int = 5
    recovery_joint_threshold: float = 0.1
    recovery_max_oks: float = 0.6
    recovery_from_recovered: bool = False
    recovery_min_agreement: float = 0.0
    recovery_min_mean_score: float = 0.0
    tau_corr: float = 0.3
    corr_min_joints: int = 1
    match_joint_threshold: float = 0.1
    min_candidate_joints: int = 1
    min_sim_oks: float = 0.2
    min_sim_flow: float = 0.2
    min_sim_reid: float = 0.5
    min_sim_corr: float = 0.0
    solver: str = "greedy"
    corr_variant: str = "paper"
    release_min_oks: float = 0.2
    max_age: int = 0
    duplicate_ratio: float | None = None
    merge: bool = False
    merge_gap: int = 10
    merge_threshold: float = 0.5
    joint_threshold: float = 0.3
    min_track_length: int = 1
    input_size: int = 512
    flow_preset: str = "medium"
    flow_max_side: int | None = None
    labeled_only: bool = False
    hog_upscale: float = 1.0
    hog_scale: float = 1.05
    hog_stride: int = 8
    hog_nms_iou: float = 0.4

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> TrackingConfigError:
            return TrackingConfigError(f"tracking config: {key}={getattr(self, key)!r}: {why}")

        for key, options in (("cue", CUES), ("boxes", BOX_SOURCES), ("solver", SOLVERS),
                             ("corr_variant", CORR_VARIANTS),
                             ("recovery_box", RECOVERY_BOXES), ("flow_preset", ("ultrafast", "fast", "medium"))):
            if getattr(self, key) not in options:
                raise bad(key, f"must be one of {', '.join(options)}")
        for key in ("tau_corr", "joint_threshold", "match_joint_threshold", "recovery_corr_threshold",
                    "recovery_joint_threshold", "recovery_max_oks", "recovery_min_agreement",
                    "recovery_min_mean_score", "nms_oks", "nms_joint_threshold",
                    "detection_min_score", "release_min_oks"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                raise bad(key, "must lie in [0, 1]")
        for key in ("max_age", "min_track_length", "merge_gap", "recovery_min_joints", "recovery_min_pose_joints",
                    "min_candidate_joints", "corr_min_joints"):
            if int(getattr(self, key)) < 0:
                raise bad(key, "must be >= 0")
        if self.input_size <= 0 or self.input_size % 32:
            raise bad("input_size", "must be a positive multiple of 32")
        if not 0.0 <= self.hog_nms_iou <= 1.0:
            raise bad("hog_nms_iou", "must lie in [0, 1]")
        if not 0.1 <= self.hog_upscale <= 8.0:
            raise bad("hog_upscale", "must lie in [0.1, 8]")
        if self.hog_scale <= 1.0:
            raise bad("hog_scale", "must be > 1 (the step between pyramid levels)")
        if self.hog_stride <= 0 or self.hog_stride % 8:
            raise bad("hog_stride", "must be a positive multiple of 8 (the HOG cell size)")

    # ---------------------------------------------------------------------------------------- building
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """{field: default} (what ``experiments/configs/tracking.yaml`` must hold)."""
        return dataclasses.asdict(cls())

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "TrackingConfig | None" = None) -> "TrackingConfig":
        """A config from ``base`` (default: the defaults) with ``values`` replaced; values are coerced to
        the field's type (strings such as "0.3", "true", "null" are accepted). Unknown keys raise
        :class:`TrackingConfigError` naming the closest valid key."""
        base = base or cls()
        types = {f.name: f.type for f in fields(cls)}
        out = {}
        for key, value in dict(values).items():
            if key not in types:
                close = difflib.get_close_matches(str(key), list(types), n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise TrackingConfigError(f"tracking config: unknown key '{key}'{hint}")
            out[key] = _coerce(key, value, str(types[key]))
        return dataclasses.replace(base, **out)

    @classmethod
    def from_overrides(cls, overrides: Iterable[str], base: "TrackingConfig | None" = None) -> "TrackingConfig":
        """Apply ``key=value`` strings (the command line's trailing arguments)."""
        values = {}
        for item in overrides:
            if "=" not in item:
                raise TrackingConfigError(f"tracking config: override '{item}' is not of the form key=value")
            k, v = item.split("=", 1)
            values[k.strip()] = v.strip()
        return cls.from_dict(values, base)

    @classmethod
    def preset(cls, name: str) -> "TrackingConfig":
        """``"paper"`` (the defaults), ``"release"`` (the authors' released tracker) or ``"shipped"`` (the
        operating point of the shipped CPU-trained weights)."""
        if name not in PRESETS:
            raise TrackingConfigError(f"tracking config: unknown preset '{name}' (one of {', '.join(PRESETS)})")
        return cls.from_dict(PRESETS[name])

    def replace(self, **changes: Any) -> "TrackingConfig":
        return self.from_dict(changes, self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------------------- what depends on it
    PRECOMPUTE_KEYS = ("boxes", "detection_min_score", "nms_oks", "nms_joint_threshold", "recovery",
                       "recovery_corr_threshold", "recovery_min_joints", "recovery_box_margin", "recovery_box",
                       "recovery_min_pose_joints", "recovery_joint_threshold", "recovery_max_oks",
                       "recovery_from_recovered", "recovery_min_agreement", "recovery_min_mean_score", "max_age", "input_size", "flow_preset", "flow_max_side",
                       "labeled_only", "hog_upscale", "hog_scale", "hog_stride", "hog_nms_iou")

    def precompute_key(self) -> dict[str, Any]:
        """The settings the per-video precomputation depends on (candidates, recovery, pair window,
        network input size, flow). Everything else (cue, tau_corr, thresholds, solver, merge, output)
        can change without running the networks again."""
        return {k: getattr(self, k) for k in self.PRECOMPUTE_KEYS}

    def min_similarity(self, cue: str | None = None) -> float:
        return float(getattr(self, f"min_sim_{cue or self.cue}"))


def _coerce(key: str, value: Any, type_name: str) -> Any:
    def fail(why: str) -> TrackingConfigError:
        return TrackingConfigError(f"tracking config: {key}={value!r}: {why}")

    optional = "None" in type_name
    if isinstance(value, str):
        v = value.strip()
        if optional and v.lower() in ("null", "none", "~", ""):
            return None
    elif value is None:
        if optional:
            return None
        raise fail("may not be null")
    else:
        v = value
    if type_name.startswith("bool"):
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return v.lower() in ("true", "yes", "on", "1")
        raise fail("expected true or false")
    if type_name.startswith("int"):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise fail("expected an integer") from None
        if isinstance(v, bool) or not f.is_integer():
            raise fail("expected an integer")
        return int(f)
    if type_name.startswith("float"):
        try:
            if isinstance(v, bool):
                raise TypeError
            return float(v)
        except (TypeError, ValueError):
            raise fail("expected a number") from None
    return str(v)

