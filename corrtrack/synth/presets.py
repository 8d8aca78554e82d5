"""Presets of the synthetic world: sizes, counts and difficulty knobs.

A preset is plain data; :func:`corrtrack.synth.generate_world` reads nothing else. All sizes are in
pixels, all rates per frame or per image, all distances in metres of the simulated ground plane.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Preset:
    """Sizes, counts and difficulty knobs of one synthetic world.

    Attributes are grouped as: COCO still images, PoseTrack videos, difficulty knobs (people, motion,
    camera, look-alikes, occluders) and the simulated detector.
    """

    name: str
    # --- COCO still images -------------------------------------------------------------------------
    coco_size: tuple[int, int]  # (width, height) of a COCO image (each image varies +-15 %)
    coco_train: int  # images in train2017
    coco_val: int  # images in val2017
    coco_people: tuple[int, int]  # people per image (inclusive range), before truncation
    coco_closeup: float  # probability of one large, truncated close-up person
    # --- PoseTrack videos --------------------------------------------------------------------------
    video_size: tuple[int, int]  # (width, height) of every video frame
    train_videos: int
    val_videos: int
    frames: tuple[int, int]  # frames per video (inclusive range)
    fps: float  # simulated frame rate: lower = larger motion between frames
    # --- difficulty knobs --------------------------------------------------------------------------
    walkers: tuple[int, int]  # people walking through the scene per video
    standers: tuple[int, int]  # people acting in place (waving, crouching, jumping ...)
    crossing_pairs: tuple[int, int]  # pairs that cross in depth, near one occluding far one
    runners: tuple[int, int]  # fast movers (3.5-7 m/s)
    reenter: tuple[int, int]  # people who leave the view and come back (same track id)
    lookalike_prob: float  # probability that a crossing pair / group wears the same
    lookalike_group: float  # probability of an extra group of 2-3 identical walkers
    crowd_prob: float  # probability of a far, tiny, unannotated crowd (ignore region)
    occluders: tuple[int, int]  # static foreground objects (poles, bushes, cars, ...)
    pan_speed: float  # max camera pan, pixels per frame at zoom 1
    zoom_range: tuple[float, float]  # camera zoom factor range over a video
    whip_pan_prob: float  # probability of a sudden fast pan (strong motion blur)
    blur_exposure: float  # shutter fraction: blur length = exposure * speed (px)
    # --- simulated detector (val videos) ------------------------------------------------------------
    det_fp_rate: float  # mean false positives per frame
    det_jitter: float  # box jitter, fraction of box size, for an unoccluded person
    det_miss: float  # miss probability of an unoccluded, untruncated person
    # --- annotation ----------------------------------------------------------------------------------
    min_visible_frac: float = 0.12  # people less visible than this are not annotated
    extra: dict = field(default_factory=dict)  # rarely used knobs, e.g. {"crossing": "overtake"|"opposite"}

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        coco_size=(320, 240),
        coco_train=40,
        coco_val=12,
        coco_people=(1, 5),
        coco_closeup=0.15,
        video_size=(320, 240),
        train_videos=2,
        val_videos=2,
        frames=(20, 24),
        fps=10.0,
        walkers=(1, 2),
        standers=(1, 1),
        crossing_pairs=(1, 1),
        runners=(0, 1),
        reenter=(1, 1),
        lookalike_prob=0.5,
        lookalike_group=0.3,
        crowd_prob=0.5,
        occluders=(0, 1),
        pan_speed=3.0,
        zoom_range=(0.9, 1.15),
        whip_pan_prob=0.0,
        blur_exposure=0.5,
        det_fp_rate=0.3,
        det_jitter=0.03,
        det_miss=0.02,
    ),
    "small": Preset(
        name="small",
        coco_size=(320, 240),
        coco_train=300,
        coco_val=80,
        coco_people=(1, 6),
        coco_closeup=0.15,
        video_size=(320, 240),
        train_videos=6,
        val_videos=4,
        frames=(38, 42),
        fps=10.0,
        walkers=(1, 3),
        standers=(1, 2),
        crossing_pairs=(1, 2),
        runners=(0, 1),
        reenter=(0, 1),
        lookalike_prob=0.5,
        lookalike_group=0.3,
        crowd_prob=0.5,
        occluders=(0, 2),
        pan_speed=4.0,
        zoom_range=(0.85, 1.2),
        whip_pan_prob=0.15,
        blur_exposure=0.5,
        det_fp_rate=0.4,
        det_jitter=0.03,
        det_miss=0.03,
    ),
    "standard": Preset(
        name="standard",
        coco_size=(480, 360),
        coco_train=800,
        coco_val=200,
        coco_people=(1, 8),
        coco_closeup=0.15,
        video_size=(640, 360),
        train_videos=10,
        val_videos=6,
        frames=(48, 56),
        fps=10.0,
        walkers=(2, 4),
        standers=(1, 2),
        crossing_pairs=(1, 2),
        runners=(0, 2),
        reenter=(0, 1),
        lookalike_prob=0.5,
        lookalike_group=0.3,
        crowd_prob=0.5,
        occluders=(0, 2),
        pan_speed=6.0,
        zoom_range=(0.85, 1.25),
        whip_pan_prob=0.15,
        blur_exposure=0.5,
        det_fp_rate=0.5,
        det_jitter=0.03,
        det_miss=0.03,
    ),
    "hard": Preset(
        name="hard",
        coco_size=(480, 360),
        coco_train=500,
        coco_val=150,
        coco_people=(2, 10),
        coco_closeup=0.2,
        video_size=(640, 360),
        train_videos=96,
        val_videos=8,
        frames=(58, 62),
        fps=8.0,
        walkers=(2, 4),
        standers=(1, 2),
        crossing_pairs=(2, 3),
        runners=(1, 3),
        reenter=(1, 2),
        lookalike_prob=0.9,
        lookalike_group=0.8,
        crowd_prob=0.7,
        occluders=(1, 3),
        pan_speed=10.0,
        zoom_range=(0.8, 1.35),
        whip_pan_prob=0.4,
        blur_exposure=0.6,
        det_fp_rate=1.0,
        det_jitter=0.05,
        det_miss=0.05,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown synthetic-world preset {name!r}; expected one of {sorted(PRESETS)}"
        ) from None
