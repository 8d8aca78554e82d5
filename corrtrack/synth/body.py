"""Articulated body model: proportions, joint angles, forward kinematics, projection, motion cycles.

Coordinate frames
-----------------
*Body frame* (metres): origin on the ground below the pelvis, ``y`` up, ``z`` forward (the way the
person faces), ``x`` towards the person's **left** (so a person facing the camera shows their left
side on the image's right, as in real photos).

*Camera frame*: the body frame turned by the person's yaw about ``y`` (yaw 0 faces the camera,
+90 deg faces image-right); after the turn ``z'`` points towards the camera, so a larger ``z'`` is
nearer. The image is an orthographic view of one person at ``scale`` pixels per metre (perspective
between people comes from the ground plane in :mod:`corrtrack.synth.scenes`), with image ``y`` down.

Points
------
:func:`forward_kinematics` returns ``(NUM_POINTS, 3)`` points: the 19 world joints in the order of
``corrtrack.keypoints.JOINTS`` (17 COCO joints, then ``head_bottom`` and ``head_top``), followed by the
helper points named in :data:`EXTRA_POINTS` that only the renderer needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from corrtrack import keypoints as K

J = {n: i for i, n in enumerate(K.WORLD_JOINT_NAMES)}
EXTRA_POINTS = (
    "pelvis",
    "neck_base",
    "head_center",
    "left_hand",
    "right_hand",
    "left_toe",
    "right_toe",
    "mouth",
    "left_heel",
    "right_heel",
)
P = dict(J)
P.update({n: K.NUM_WORLD_JOINTS + i for i, n in enumerate(EXTRA_POINTS)})
NUM_POINTS = K.NUM_WORLD_JOINTS + len(EXTRA_POINTS)
FACE_JOINTS = tuple(J[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))

# Proportions as fractions of standing height (adult; anthropometric averages, rounded).
ANKLE_H = 0.045
SHIN = 0.245
THIGH = 0.245
HIP_HALF = 0.06
PELVIS_UP = 0.025
SPINE = 0.265
SHOULDER_HALF = 0.115
NECK = 0.045
HEAD_HALF = 0.065  # half of the head's height (chin to crown)
HEAD_RX = 0.05  # half of the head's width
UPPER_ARM = 0.175
FOREARM = 0.15
HAND = 0.07
FOOT = 0.11
# Face points relative to the head centre, head frame (x left, y up, z forward), fractions of height.
FACE = {
    "nose": (0.0, -0.012, 0.057),
    "left_eye": (0.021, 0.010, 0.046),
    "right_eye": (-0.021, 0.010, 0.046),
    "left_ear": (0.050, 0.000, -0.004),
    "right_ear": (-0.050, 0.000, -0.004),
    "mouth": (0.0, -0.034, 0.047),
}


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


@dataclass
class BodyShape:
    """Static proportions of one person. ``height`` in metres; the rest are multipliers around 1."""

    height: float = 1.75
    build: float = 1.0  # torso / hip width
    limb: float = 1.0  # limb thickness
    head: float = 1.0  # head size
    arm_len: float = 1.0
    leg_len: float = 1.0


@dataclass
class Pose:
    """Joint angles in radians. Index 0 of each pair is the left side, 1 the right side.

    Limb angles: ``sh_flex`` raises the arm forward (pi = straight up), ``sh_abd`` raises it sideways,
    ``elbow`` bends the forearm, ``elbow_twist`` turns the bend direction upward (external rotation);
    ``hip_flex`` swings the thigh forward, ``hip_abd`` sideways, ``knee`` bends the shin backward.
    """

    torso_pitch: float = 0.0  # forward lean
    torso_roll: float = 0.0  # side bend
    torso_twist: float = 0.0  # upper body turned about the spine
    head_pitch: float = 0.0  # nod down (+)
    head_yaw: float = 0.0  # look to the person's left (+)
    head_roll: float = 0.0
    sh_flex: np.ndarray = field(default_factory=lambda: np.zeros(2))
    sh_abd: np.ndarray = field(default_factory=lambda: np.full(2, 0.12))
    elbow: np.ndarray = field(default_factory=lambda: np.full(2, 0.15))
    elbow_twist: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hip_flex: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hip_abd: np.ndarray = field(default_factory=lambda: np.full(2, 0.04))
    knee: np.ndarray = field(default_factory=lambda: np.full(2, 0.05))
    bob: float = 0.0  # extra height above the ground (m), e.g. the flight phase of running

    def copy(self) -> "Pose":
        return replace(
            self,
            sh_flex=self.sh_flex.copy(),
            sh_abd=self.sh_abd.copy(),
            elbow=self.elbow.copy(),
            elbow_twist=self.elbow_twist.copy(),
            hip_flex=self.hip_flex.copy(),
            hip_abd=self.hip_abd.copy(),
            knee=self.knee.copy(),
        )


def _limb(
    root: np.ndarray,
    frame: np.ndarray,
    side: int,
    flex: float,
    abd: float,
    bend: float,
    twist: float,
    l1: float,
    l2: float,
    backward_bend: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-segment limb. Returns (middle joint, end joint, direction of the second segment)."""
    r = frame @ rot_x(-flex) @ rot_z(side * abd)
    u = r @ np.array([0.0, -1.0, 0.0])
    f = r @ np.array([0.0, 0.0, 1.0])
    if twist:
        f = np.cos(twist) * f - side * np.sin(twist) * np.cross(u, f)
    mid = root + l1 * u
    d2 = np.cos(bend) * u + (-np.sin(bend) if backward_bend else np.sin(bend)) * f
    return mid, mid + l2 * d2, d2


def forward_kinematics(shape: BodyShape, pose: Pose) -> np.ndarray:
    """Body-frame points of one person, ``(NUM_POINTS, 3)`` metres; feet rest on ``y = 0`` (+ ``bob``)."""
    h = shape.height
    pts = np.zeros((NUM_POINTS, 3))
    legs = shape.leg_len
    hip_h = (ANKLE_H + SHIN * legs + THIGH * legs) * h
    pelvis = np.array([0.0, hip_h + PELVIS_UP * h, 0.0])
    eye3 = np.eye(3)
    for side, name in ((1, "left"), (-1, "right")):
        k = 0 if side == 1 else 1
        hip = pelvis + np.array([side * HIP_HALF * shape.build * h, -PELVIS_UP * h, 0.0])
        knee, ankle, shin_dir = _limb(
            hip,
            eye3,
            side,
            pose.hip_flex[k],
            pose.hip_abd[k],
            pose.knee[k],
            0.0,
            THIGH * legs * h,
            SHIN * legs * h,
            backward_bend=True,
        )
        # The foot points forward, perpendicular to the shin, flattened towards the ground.
        fwd = np.cross(shin_dir, np.array([1.0, 0.0, 0.0]))
        fwd = -fwd if fwd[2] < 0 else fwd
        foot_dir = 0.5 * fwd + 0.5 * np.array([0.0, 0.0, 1.0])
        foot_dir /= np.linalg.norm(foot_dir) + 1e-9
        pts[J[f"{name}_hip"]] = hip
        pts[J[f"{name}_knee"]] = knee
        pts[J[f"{name}_ankle"]] = ankle
        pts[P[f"{name}_toe"]] = ankle + FOOT * h * foot_dir + np.array([0, -0.6 * ANKLE_H * h, 0])
        pts[P[f"{name}_heel"]] = ankle - 0.03 * h * foot_dir + np.array([0, -ANKLE_H * h, 0])
    torso = rot_y(pose.torso_twist) @ rot_x(pose.torso_pitch) @ rot_z(pose.torso_roll)
    neck_base = pelvis + torso @ np.array([0.0, SPINE * h, 0.0])
    head_bottom = neck_base + torso @ rot_x(0.5 * pose.head_pitch) @ np.array([0.0, NECK * h, 0.005 * h])
    head_frame = torso @ rot_y(pose.head_yaw) @ rot_x(pose.head_pitch) @ rot_z(pose.head_roll)
    hs = shape.head * h
    head_c = head_bottom + head_frame @ np.array([0.0, HEAD_HALF * hs, 0.0])
    pts[P["pelvis"]] = pelvis
    pts[P["neck_base"]] = neck_base
    pts[J["head_bottom"]] = head_bottom
    pts[P["head_center"]] = head_c
    pts[J["head_top"]] = head_c + head_frame @ np.array([0.0, HEAD_HALF * hs, 0.0])
    for name, off in FACE.items():
        pts[P[name]] = head_c + head_frame @ (np.asarray(off) * hs)
    for side, name in ((1, "left"), (-1, "right")):
        k = 0 if side == 1 else 1
        sh = neck_base + torso @ np.array([side * SHOULDER_HALF * shape.build * h, -0.015 * h, 0.0])
        elbow, wrist, fore = _limb(
            sh,
            torso,
            side,
            pose.sh_flex[k],
            pose.sh_abd[k],
            pose.elbow[k],
            pose.elbow_twist[k],
            UPPER_ARM * shape.arm_len * h,
            FOREARM * shape.arm_len * h,
            backward_bend=False,
        )
        pts[J[f"{name}_shoulder"]] = sh
        pts[J[f"{name}_elbow"]] = elbow
        pts[J[f"{name}_wrist"]] = wrist
        pts[P[f"{name}_hand"]] = wrist + HAND * h * fore
    ground = min(pts[P[n], 1] for n in ("left_toe", "right_toe", "left_heel", "right_heel"))
    ground = min(ground, pts[J["left_knee"], 1] - 0.03 * h, pts[J["right_knee"], 1] - 0.03 * h)
    pts[:, 1] += pose.bob - ground
    return pts


def project(
    pts: np.ndarray, yaw: float, origin: np.ndarray, scale: float, roll: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Project body-frame points to the image.

    Args:
        pts: ``(N, 3)`` body-frame points (metres).
        yaw: facing angle (rad): 0 faces the camera, +pi/2 faces image-right.
        origin: ``(2,)`` image position (pixels) of the body-frame origin (ground below the pelvis).
        scale: pixels per metre.
        roll: in-plane rotation (rad, counter-clockwise on screen) about the pelvis.
    Returns:
        ``(N, 2)`` image points (x right, y down, pixels) and ``(N,)`` depth ``z'`` in metres
        (larger = nearer the camera), relative to the body origin.
    """
    q = pts @ rot_y(yaw).T
    xy = np.stack([q[:, 0], -q[:, 1]], axis=1)
    if roll:
        c = xy[P["pelvis"]].copy()
        cr, sr = np.cos(-roll), np.sin(-roll)
        xy = (xy - c) @ np.array([[cr, sr], [-sr, cr]]) + c
    return origin[None, :] + scale * xy, q[:, 2]


def face_hidden(pts: np.ndarray, yaw: float, shape: BodyShape) -> np.ndarray:
    """``(NUM_WORLD_JOINTS,)`` bool: face joints on the far side of the person's own head.

    The only self-occlusion that counts: a face point (nose, eyes, ears) whose depth is clearly behind
    the head centre is hidden by the head itself (the back of a head shows no eyes). Limbs hidden by
    the person's own body count as visible, like in most annotation guidelines.
    """
    q = pts @ rot_y(yaw).T
    rel = q[:, 2] - q[P["head_center"], 2]
    out = np.zeros(K.NUM_WORLD_JOINTS, dtype=bool)
    thresh = -0.28 * HEAD_RX * shape.head * shape.height
    for j in FACE_JOINTS:
        out[j] = rel[j] < thresh
    return out


# --------------------------------------------------------------------------------------------------
# Motion: actions are smooth functions of a phase; the video script advances the phase with time
# (in-place actions) or with distance walked (gait), so joints follow smooth trajectories.
# --------------------------------------------------------------------------------------------------
ACTIONS = ("stand", "walk", "run", "wave", "arms_up", "crouch", "jumping_jacks", "dance", "kick", "point")


@dataclass
class Style:
    """Per-person motion style: random offsets that make two people doing the same action differ."""

    arm_swing: float = 1.0
    stride: float = 1.0
    lean: float = 0.0
    elbow: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    arm_abd: float = 0.12
    freqs: np.ndarray = field(default_factory=lambda: np.ones(12))
    phases: np.ndarray = field(default_factory=lambda: np.zeros(12))
    hand: int = 0  # which hand waves / points (0 left, 1 right)

    @staticmethod
    def sample(rng: np.random.Generator) -> "Style":
        return Style(
            arm_swing=rng.uniform(0.6, 1.3),
            stride=rng.uniform(0.85, 1.15),
            lean=rng.normal(0, 0.04),
            elbow=rng.uniform(0.0, 0.35),
            head_yaw=rng.normal(0, 0.25),
            head_pitch=rng.normal(0.05, 0.1),
            arm_abd=rng.uniform(0.05, 0.3),
            freqs=rng.uniform(0.6, 1.6, 12),
            phases=rng.uniform(0, 2 * np.pi, 12),
            hand=int(rng.integers(2)),
        )


def _smooth_pulse(x: np.ndarray | float) -> np.ndarray | float:
    return 0.5 - 0.5 * np.cos(x)


def _gait_pose(p: Pose, action: str, phase: float, style: Style, amount: float) -> None:
    """Walking and running: legs, arms, bob and twist follow the gait phase, scaled by ``amount``."""
    s = np.sin(phase)
    sw = style.stride
    if action == "walk":
        a = amount * sw
        p.hip_flex[:] = [0.42 * a * s, -0.42 * a * s]
        p.knee[:] = [
            0.08 + 0.75 * a * max(0.0, np.cos(phase - 0.6)) ** 1.5,
            0.08 + 0.75 * a * max(0.0, np.cos(phase + np.pi - 0.6)) ** 1.5,
        ]
        p.sh_flex[:] = [-0.45 * a * style.arm_swing * s, 0.45 * a * style.arm_swing * s]
        p.elbow[:] = 0.2 + style.elbow + 0.25 * a * np.array([max(0, -s), max(0, s)])
        p.bob = 0.012 * a * abs(np.cos(phase))
        p.torso_twist = 0.06 * a * s
    elif action == "run":
        a = amount * sw
        p.torso_pitch = style.lean + 0.22 * a
        p.hip_flex[:] = [0.8 * a * s + 0.15, -0.8 * a * s + 0.15]
        p.knee[:] = [
            0.3 + 1.5 * a * max(0.0, np.cos(phase - 0.7)) ** 1.2,
            0.3 + 1.5 * a * max(0.0, np.cos(phase + np.pi - 0.7)) ** 1.2,
        ]
        p.sh_flex[:] = [-0.9 * a * style.arm_swing * s, 0.9 * a * style.arm_swing * s]
        p.elbow[:] = 1.4 + 0.3 * style.elbow
        p.bob = 0.05 * a * abs(s)
        p.torso_twist = 0.12 * a * s
        p.head_pitch = style.head_pitch - 0.15


def _calm_pose(p: Pose, action: str, phase: float, style: Style) -> None:
    """Standing, waving, arms up and crouching."""
    s, c = np.sin(phase), np.cos(phase)
    if action == "stand":
        p.sh_flex[:] = 0.06 * np.sin(style.freqs[:2] * 0.3 * phase + style.phases[:2])
        p.hip_abd[:] = 0.05
        p.torso_roll = 0.04 * np.sin(0.5 * phase + style.phases[2])
        p.head_yaw = style.head_yaw + 0.4 * np.sin(0.3 * phase + style.phases[3])
    elif action == "wave":
        k = style.hand
        p.sh_abd[k] = 1.6 + 0.2 * s
        p.elbow[k] = 1.3 + 0.45 * s
        p.elbow_twist[k] = 1.5
        p.sh_flex[k] = 0.2
        p.head_yaw = style.head_yaw
    elif action == "arms_up":
        lift = 2.5 + 0.35 * s
        p.sh_flex[:] = [lift * 0.6, lift * 0.6]
        p.sh_abd[:] = [lift * 0.45, lift * 0.45]
        p.elbow[:] = 0.3 + 0.3 * c
        p.head_pitch = style.head_pitch - 0.3
    elif action == "crouch":
        d = _smooth_pulse(phase)  # 0 standing .. 1 deep crouch
        p.hip_flex[:] = 0.15 + 1.65 * d
        p.knee[:] = 0.1 + 2.1 * d
        p.hip_abd[:] = 0.08 + 0.15 * d
        p.torso_pitch = style.lean + 0.55 * d
        p.sh_flex[:] = 0.2 + 0.9 * d
        p.elbow[:] = 0.3 + 0.6 * d


def _lively_pose(p: Pose, action: str, phase: float, style: Style) -> None:
    """Jumping jacks, dancing, kicking and pointing."""
    s = np.sin(phase)
    if action == "jumping_jacks":
        d = _smooth_pulse(phase)
        p.sh_abd[:] = 0.2 + 2.6 * d
        p.elbow[:] = 0.2
        p.hip_abd[:] = 0.05 + 0.3 * d
        p.bob = 0.06 * np.sin(phase) ** 2
    elif action == "dance":
        f, ph = style.freqs, style.phases
        osc = np.sin(f * phase + ph)
        p.sh_flex[:] = 0.8 + 1.1 * osc[0:2]
        p.sh_abd[:] = 0.7 + 0.7 * osc[2:4]
        p.elbow[:] = 0.9 + 0.8 * osc[4:6]
        p.hip_flex[:] = 0.2 + 0.35 * osc[6:8]
        p.knee[:] = 0.35 + 0.35 * osc[8:10]
        p.torso_roll = 0.15 * osc[10]
        p.torso_twist = 0.3 * osc[11]
        p.head_roll = 0.15 * osc[10]
    elif action == "kick":
        k = style.hand
        d = _smooth_pulse(phase)
        p.hip_flex[k] = 0.1 + 1.3 * d
        p.knee[k] = 0.9 - 0.75 * d
        p.hip_flex[1 - k] = -0.05
        p.sh_abd[:] = 0.5 + 0.3 * d
        p.torso_pitch = style.lean - 0.2 * d
    elif action == "point":
        k = style.hand
        p.sh_flex[k] = 1.45 + 0.1 * s
        p.sh_abd[k] = 0.3
        p.elbow[k] = 0.05
        p.head_yaw = style.head_yaw + (0.5 if k == 0 else -0.5)
    else:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")


def action_pose(action: str, phase: float, style: Style, amount: float = 1.0) -> Pose:
    """Pose of ``action`` at ``phase`` (radians; one cycle = 2 pi).

    ``amount`` in [0, 1] scales gait amplitude (a slow walk swings less). Every angle is a smooth
    (sinusoidal) function of the phase, so a steadily advancing phase gives smooth joint trajectories.
    """
    p = Pose()
    p.head_yaw = style.head_yaw
    p.head_pitch = style.head_pitch
    p.torso_pitch = style.lean
    p.sh_abd[:] = style.arm_abd
    p.elbow[:] = 0.15 + style.elbow
    if action in ("walk", "run"):
        _gait_pose(p, action, phase, style, amount)
    elif action in ("stand", "wave", "arms_up", "crouch"):
        _calm_pose(p, action, phase, style)
    else:
        _lively_pose(p, action, phase, style)
    return p


def random_pose(rng: np.random.Generator, style: Style) -> tuple[str, Pose]:
    """A varied still pose for COCO images: an action at a random phase plus joint noise."""
    action = str(rng.choice(ACTIONS, p=[0.16, 0.2, 0.12, 0.08, 0.08, 0.1, 0.06, 0.1, 0.05, 0.05]))
    pose = action_pose(action, rng.uniform(0, 2 * np.pi), style, amount=rng.uniform(0.5, 1.0))
    pose.sh_flex = pose.sh_flex + rng.normal(0, 0.25, 2)
    pose.sh_abd = np.clip(pose.sh_abd + rng.normal(0, 0.2, 2), -0.1, 3.0)
    pose.elbow = np.clip(pose.elbow + rng.normal(0, 0.3, 2), 0.0, 2.5)
    pose.hip_flex = pose.hip_flex + rng.normal(0, 0.08, 2)
    pose.knee = np.clip(pose.knee + rng.normal(0, 0.08, 2), 0.0, 2.4)
    pose.head_yaw += rng.normal(0, 0.3)
    pose.head_pitch += rng.normal(0, 0.1)
    return action, pose


def sample_shape(rng: np.random.Generator, child_prob: float = 0.08) -> BodyShape:
    """Plausible proportions: adults 1.5-1.95 m, some children with relatively larger heads."""
    if rng.random() < child_prob:
        return BodyShape(
            height=rng.uniform(1.0, 1.4),
            build=rng.uniform(0.85, 1.0),
            limb=rng.uniform(0.85, 1.0),
            head=rng.uniform(1.15, 1.3),
            arm_len=rng.uniform(0.9, 1.0),
            leg_len=rng.uniform(0.9, 0.97),
        )
    return BodyShape(
        height=float(np.clip(rng.normal(1.72, 0.09), 1.5, 1.95)),
        build=rng.uniform(0.85, 1.25),
        limb=rng.uniform(0.85, 1.2),
        head=rng.uniform(0.92, 1.08),
        arm_len=rng.uniform(0.95, 1.05),
        leg_len=rng.uniform(0.96, 1.04),
    )
