"""Scenes: still images (COCO) and scripted videos (PoseTrack) on a ground plane.

Geometry
--------
A pinhole camera at height ``cam_h`` (m) looks horizontally; the horizon is image row ``horizon``.
A person standing at lateral position ``X`` and depth ``d`` (m) has the ground point
``(cx + f X / d, horizon + f cam_h / d)`` and ``f / d`` pixels per metre, so far people are small and
high in the image and near ones large and low (the real cue that orders them in depth).

Videos are scripted on a *world panorama* (pixels) wider than a frame; the camera is a similarity
``frame = zoom * (world - centre) + (W/2, H/2)`` whose centre pans and whose zoom varies smoothly over
the video, with optional sudden whip pans. Every person follows a smooth path on the ground
(waypoints smoothed by a moving average); the gait phase advances with distance walked, so walking and
running cycles stay in step with the ground speed; in-place actions advance with time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from corrtrack.synth import body as B
from corrtrack.synth.presets import Preset
from corrtrack.synth.render import ObjectView, PersonView, build_person_view
from corrtrack.synth.textures import Appearance, ObjectSpec, make_background

ACTOR_MAX_DEPTH = 13.0  # annotated people stay nearer than this (m)
CROWD_DEPTH = (24.0, 40.0)  # far, tiny, unannotated crowds (covered by ignore regions)


@dataclass
class Camera:
    """Ground-plane camera in world-panorama pixels."""

    focal: float
    horizon: float
    cam_h: float
    cx: float

    def ground_point(self, X: float, d: float) -> np.ndarray:
        return np.array([self.cx + self.focal * X / d, self.horizon + self.focal * self.cam_h / d])

    def lateral(self, x_px: float, d: float) -> float:
        """Lateral position (m) at depth ``d`` of world column ``x_px``."""
        return (x_px - self.cx) * d / self.focal


# --------------------------------------------------------------------------------------------------
# Still images (COCO)
# --------------------------------------------------------------------------------------------------
@dataclass
class StillScene:
    """A rendered-to-be still image: background, people and objects in image coordinates."""

    background: np.ndarray
    items: list
    people: list[PersonView]


def sample_still(rng: np.random.Generator, preset: Preset) -> StillScene:
    """One COCO-style image: 1..N people in varied poses at varied depths, some truncated or occluded."""
    W0, H0 = preset.coco_size
    W = int(round(W0 * rng.uniform(0.85, 1.15) / 8) * 8)
    H = int(round(H0 * rng.uniform(0.85, 1.15) / 8) * 8)
    if rng.random() < 0.15:  # some portrait images, as in COCO
        W, H = H, W
    f = W * rng.uniform(0.8, 1.3)
    cam = Camera(focal=f, horizon=H * rng.uniform(0.15, 0.5), cam_h=rng.uniform(1.2, 2.4), cx=W / 2)
    bg = make_background(rng, W, H, cam.horizon, f, cam.cam_h, cam.cx)
    n = int(rng.integers(preset.coco_people[0], preset.coco_people[1] + 1))
    d_near = f * 1.7 / (0.95 * H)  # a person filling the image height
    d_far = min(ACTOR_MAX_DEPTH * 1.3, f * 1.7 / 28.0)  # about 28 px tall
    people: list[PersonView] = []
    items: list = []
    group_look = Appearance.random(rng) if rng.random() < preset.lookalike_group * 0.5 else None
    for i in range(n):
        closeup = i == 0 and rng.random() < preset.coco_closeup
        # Depth: log-uniform between "fills the image" and "about 28 px tall", skewed towards near
        # (COCO annotates mostly medium and large people).
        u = rng.random() ** 1.6
        d = (
            rng.uniform(0.45, 0.8) * d_near
            if closeup
            else float(np.exp(np.log(d_near) + u * (np.log(max(d_far, d_near * 1.5)) - np.log(d_near))))
        )
        x_px = rng.uniform(-0.1, 1.1) * W if not closeup else rng.uniform(0.2, 0.8) * W
        X = cam.lateral(x_px, d)
        shape = B.sample_shape(rng)
        look = group_look if (group_look is not None and rng.random() < 0.5) else Appearance.random(rng)
        style = B.Style.sample(rng)
        _, pose = B.random_pose(rng, style)
        yaw = float(rng.normal(0, 0.8)) if rng.random() < 0.6 else float(rng.uniform(-np.pi, np.pi))
        roll = float(rng.normal(0, 0.06)) if rng.random() < 0.97 else float(rng.uniform(-0.8, 0.8))
        s = f / d
        v = build_person_view(i, shape, look, pose, yaw, cam.ground_point(X, d), s, d, roll=roll)
        people.append(v)
        items.append(v)
    if rng.random() < preset.crowd_prob * 0.5:  # a few tiny far people, never annotated
        _add_crowd(rng, cam, W, items, people, uid0=100)
    for _ in range(int(rng.random() < 0.35) * int(rng.integers(1, 3))):
        spec = ObjectSpec.random(rng)
        d = rng.uniform(1.5, 12.0)
        X = cam.lateral(rng.uniform(0, W), d)
        items.append(ObjectView(spec, cam.ground_point(X, d), f / d, d))
    return StillScene(background=bg, items=items, people=people)


def _add_crowd(rng: np.random.Generator, cam: Camera, W: float, items: list, people: list, uid0: int) -> None:
    n = int(rng.integers(3, 9))
    d0 = rng.uniform(*CROWD_DEPTH)
    x0 = rng.uniform(0.1, 0.9) * W
    for k in range(n):
        d = d0 + rng.uniform(-2, 2)
        X = cam.lateral(x0, d) + rng.uniform(-2.5, 2.5)
        shape = B.sample_shape(rng)
        _, pose = B.random_pose(rng, B.Style.sample(rng))
        v = build_person_view(
            uid0 + k,
            shape,
            Appearance.random(rng),
            pose,
            float(rng.uniform(-np.pi, np.pi)),
            cam.ground_point(X, d),
            cam.focal / d,
            d,
            annotate=False,
        )
        people.append(v)
        items.append(v)


# --------------------------------------------------------------------------------------------------
# Videos (PoseTrack)
# --------------------------------------------------------------------------------------------------
@dataclass
class Actor:
    """A scripted person: appearance and per-frame ground position, heading and action phase.

    Arrays have one entry per frame: ``X`` lateral (m), ``D`` depth (m), ``yaw`` (rad), ``phase`` (rad),
    ``amount`` (gait amplitude 0..1).
    """

    uid: int
    track_id: int
    shape: B.BodyShape
    look: Appearance
    style: B.Style
    action: str
    X: np.ndarray
    D: np.ndarray
    yaw: np.ndarray
    phase: np.ndarray
    amount: np.ndarray
    role: str = "walker"  # walker | runner | stander | crossing | reenter | crowd | group
    crowd_group: int = -1  # index of the crowd (ignore region) this member belongs to
    lookalike_group: int = -1
    info: dict = field(default_factory=dict)


@dataclass
class StaticObject:
    spec: ObjectSpec
    X: float
    D: float


@dataclass
class VideoScript:
    """Everything needed to render every frame of one video deterministically."""

    size: tuple[int, int]
    n_frames: int
    fps: float
    camera: Camera
    pan_centre: np.ndarray  # (T, 2) world px at the frame centre
    zoom: np.ndarray  # (T,)
    world_origin: np.ndarray  # (2,) world px of panorama pixel (0, 0)
    panorama: np.ndarray  # (Hp, Wp, 3) uint8
    actors: list[Actor]
    objects: list[StaticObject]
    blur_exposure: float
    info: dict = field(default_factory=dict)

    def camera_affine(self, t: int) -> np.ndarray:
        """``(2, 3)`` world px -> frame px at frame ``t``."""
        W, H = self.size
        z = self.zoom[t]
        c = self.pan_centre[t]
        return np.array([[z, 0, W / 2 - z * c[0]], [0, z, H / 2 - z * c[1]]])


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return x
    pad = np.pad(x, (k, k), mode="edge")
    ker = np.hanning(2 * k + 1)
    ker /= ker.sum()
    return np.convolve(pad, ker, mode="same")[k:-k]


def _path(
    times: list[float], xs: list[float], ds: list[float], T: int, smooth: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(T, dtype=np.float64)
    X = np.interp(t, times, xs)
    D = np.interp(t, times, ds)
    # Extrapolate linearly outside the waypoint span (people keep walking in and out of the scene).
    if times[0] > 0 and len(times) > 1:
        vx = (xs[1] - xs[0]) / (times[1] - times[0])
        vd = (ds[1] - ds[0]) / (times[1] - times[0])
        m = t < times[0]
        X[m] = xs[0] + vx * (t[m] - times[0])
        D[m] = ds[0] + vd * (t[m] - times[0])
    if times[-1] < T - 1 and len(times) > 1:
        vx = (xs[-1] - xs[-2]) / (times[-1] - times[-2])
        vd = (ds[-1] - ds[-2]) / (times[-1] - times[-2])
        m = t > times[-1]
        X[m] = xs[-1] + vx * (t[m] - times[-1])
        D[m] = ds[-1] + vd * (t[m] - times[-1])
    return _smooth(X, smooth), np.clip(_smooth(D, smooth), 2.5, 60.0)


def _gait(
    rng, X: np.ndarray, D: np.ndarray, fps: float, shape: B.BodyShape, run: bool, yaw0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Yaw, phase and amplitude along a path: phase advances with distance, yaw follows the heading."""
    T = len(X)
    vx = np.gradient(X) * fps if T > 1 else np.zeros(T)
    vd = np.gradient(D) * fps if T > 1 else np.zeros(T)
    speed = np.hypot(vx, vd)
    stride = (2.4 if run else 1.45) * shape.height / 1.75
    phase = rng.uniform(0, 2 * np.pi) + np.concatenate([[0], np.cumsum(speed[1:] / fps)]) * 2 * np.pi / stride
    yaw = np.zeros(T)
    cur = yaw0
    for t in range(T):
        if speed[t] > 0.25:
            target = np.arctan2(vx[t], -vd[t])
            diff = (target - cur + np.pi) % (2 * np.pi) - np.pi
            cur = cur + diff * min(1.0, 0.5 * 10.0 / fps)  # turn within ~2 frames at 10 fps
        yaw[t] = cur
    amount = np.clip(speed / (4.5 if run else 1.4), 0.0, 1.0)
    if run:
        amount = np.clip(amount, 0.55, 1.0) * (speed > 0.5) + amount * (speed <= 0.5)
    return yaw, phase, amount, ("run" if run else "walk")


def _view_at(script_centre: np.ndarray, zoom: np.ndarray, W: int, H: int, t: int) -> tuple[float, float]:
    """World-px x range visible at frame ``t``."""
    half = W / 2 / zoom[t]
    return script_centre[t, 0] - half, script_centre[t, 0] + half


def _camera_path(rng: np.random.Generator, preset: Preset, T: int, H: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pan centre (T, 2) and zoom (T,) of a video: smooth pan and zoom, some static cameras, an optional
    whip pan (a burst of fast panning, recorded in the returned info)."""
    t = np.arange(T, dtype=np.float64)
    v0 = rng.uniform(-1, 1) * preset.pan_speed
    vel = v0 + 0.5 * preset.pan_speed * np.sin(2 * np.pi * t / rng.uniform(25, 60) + rng.uniform(0, 6.3))
    vel *= rng.random() < 0.85  # some videos have a static camera
    info: dict = {"whip_pan": None}
    if rng.random() < preset.whip_pan_prob and T > 12:
        t0 = int(rng.integers(T // 4, 3 * T // 4))
        dur = int(rng.integers(3, 6))
        burst = np.zeros(T)
        burst[t0 : t0 + dur] = (
            np.hanning(dur + 2)[1:-1] * rng.choice([-1, 1]) * preset.pan_speed * rng.uniform(3, 5)
        )
        vel = vel + burst
        info["whip_pan"] = [t0, t0 + dur]
    cx_path = np.concatenate([[0], np.cumsum(vel[1:])])
    shake = np.stack([_smooth(rng.normal(0, 0.6, T), 2), _smooth(rng.normal(0, 0.6, T), 2)], 1)
    centre = np.stack([cx_path, np.full(T, H / 2.0)], 1) + shake
    z_lo, z_hi = preset.zoom_range
    zm = rng.uniform(z_lo, z_hi)
    za = rng.uniform(0, (z_hi - z_lo) / 2)
    zoom = np.clip(
        zm + za * np.sin(2 * np.pi * t / rng.uniform(T * 0.7, T * 2.0) + rng.uniform(0, 6.3)), z_lo, z_hi
    )
    return centre, zoom, info


def _panorama(rng: np.random.Generator, cam: Camera, centre: np.ndarray, zoom: np.ndarray, W: int,
              H: int) -> tuple[np.ndarray, np.ndarray]:
    """The world panorama covering every view with a margin, and its origin in world pixels."""
    half_w, half_h = W / 2 / zoom, H / 2 / zoom
    x_lo, x_hi = float((centre[:, 0] - half_w).min()) - 8, float((centre[:, 0] + half_w).max()) + 8
    y_lo, y_hi = float((centre[:, 1] - half_h).min()) - 8, float((centre[:, 1] + half_h).max()) + 8
    origin = np.array([np.floor(x_lo), np.floor(y_lo)])
    Wp, Hp = int(np.ceil(x_hi - origin[0])), int(np.ceil(y_hi - origin[1]))
    pano = make_background(rng, Wp, Hp, cam.horizon - origin[1], cam.focal, cam.cam_h, cam.cx - origin[0])
    return pano, origin


class _Cast:
    """The people of one video, added role by role. Every method draws from ``rng`` in a fixed order, so
    a world is reproducible from its seed; track ids are 1..N in order of creation."""

    def __init__(self, rng: np.random.Generator, preset: Preset, cam: Camera, centre: np.ndarray,
                 zoom: np.ndarray, T: int):
        self.rng, self.preset, self.cam, self.centre, self.zoom, self.T = rng, preset, cam, centre, zoom, T
        self.W, self.H = preset.video_size
        self.fps = preset.fps
        self.t = np.arange(T, dtype=np.float64)
        self.actors: list[Actor] = []
        self.look_group = 0
        self.crowd_groups = 0

    def new_actor(self, role, look=None, shape=None, **kw) -> Actor:
        rng = self.rng
        uid = len(self.actors)
        a = Actor(
            uid=uid,
            track_id=uid + 1,
            shape=shape or B.sample_shape(rng, child_prob=0.05),
            look=look or Appearance.random(rng),
            style=B.Style.sample(rng),
            role=role,
            **kw,
        )
        self.actors.append(a)
        return a

    def walking_actor(self, role: str, X: np.ndarray, D: np.ndarray, run: bool = False, **kw) -> Actor:
        """An actor on path (X, D) whose gait follows the path (walk, or run)."""
        T = self.T
        a = self.new_actor(role, action="run" if run else "walk", X=X, D=D, yaw=np.zeros(T), phase=np.zeros(T),
                           amount=np.zeros(T), **kw)
        a.yaw, a.phase, a.amount, a.action = _gait(self.rng, X, D, self.fps, a.shape, run, 0.0)
        return a

    def in_view_x(self, tt: int, frac: float) -> float:
        lo, hi = _view_at(self.centre, self.zoom, self.W, self.H, tt)
        return lo + frac * (hi - lo)

    def walker_path(self, tm, xm_px, dm, speed, heading):
        """Straight line through (tm, x at depth dm) with ``heading`` (0 = image-right, pi/2 = away)."""
        Xm = self.cam.lateral(xm_px, dm)
        vx, vd = speed * np.cos(heading) / self.fps, speed * np.sin(heading) / self.fps
        return _path([tm, tm + 1], [Xm, Xm + vx], [dm, dm + vd], self.T, smooth=0)

    def lateral_heading(self):
        h = self.rng.normal(0, 0.35)
        return h if self.rng.random() < 0.5 else np.pi - h

    def crossing_pairs(self) -> None:
        """Near person passes in front of a far one around frame tc (several frames of occlusion)."""
        rng, preset, T = self.rng, self.preset, self.T
        for _ in range(int(rng.integers(preset.crossing_pairs[0], preset.crossing_pairs[1] + 1))):
            tc = int(rng.integers(int(0.35 * T), max(int(0.35 * T) + 1, int(0.65 * T))))
            xc = self.in_view_x(tc, rng.uniform(0.3, 0.7))
            d1 = rng.uniform(3.5, 7.0)
            d2 = min(ACTOR_MAX_DEPTH - 0.5, d1 + rng.uniform(1.0, 3.5))
            same = rng.random() < preset.lookalike_prob
            look = Appearance.random(rng) if same else None
            shape = B.sample_shape(rng, 0.0) if same else None
            # Occlusion lasts about (width near + width far) / relative speed: strolling opposite walkers
            # give 3-6 frames at 10 fps, overtakes (small speed difference) 6-15 frames.
            mode = preset.extra.get("crossing", "any")
            overtake = rng.random() < 0.6 if mode == "any" else mode == "overtake"
            dir1 = rng.choice([-1.0, 1.0])
            dir2 = dir1 if overtake else -dir1
            if overtake:
                slow = rng.uniform(0.7, 1.2)
                fast = slow + rng.uniform(0.35, 0.8)
                s1, s2 = (fast, slow) if rng.random() < 0.5 else (slow, fast)
            else:
                s1, s2 = rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0)
            for dd, dirn, sp in ((d1, dir1, s1), (d2, dir2, s2)):
                X, D = self.walker_path(tc, xc, dd, sp, (0 if dirn > 0 else np.pi) + rng.normal(0, 0.08))
                sh = B.BodyShape(**vars(shape)) if shape is not None else None
                if sh is not None:
                    sh.height *= rng.uniform(0.98, 1.02)
                self.walking_actor("crossing", X, D, look=look, shape=sh,
                                   lookalike_group=self.look_group if same else -1)
            self.look_group += int(same)

    def walkers(self) -> None:
        """Walkers crossing the scene in any direction."""
        rng, preset, T = self.rng, self.preset, self.T
        for _ in range(int(rng.integers(preset.walkers[0], preset.walkers[1] + 1))):
            tm = int(rng.integers(0, T))
            heading = (self.lateral_heading() if rng.random() < 0.75
                       else rng.choice([-1, 1]) * rng.uniform(0.9, 2.2))
            X, D = self.walker_path(tm, self.in_view_x(tm, rng.uniform(0.1, 0.9)), rng.uniform(3.5, 11.0),
                                    rng.uniform(0.9, 1.7), heading)
            self.walking_actor("walker", X, np.clip(D, 3.0, ACTOR_MAX_DEPTH))

    def lookalike_group(self) -> None:
        """A group of identical look-alikes walking side by side (sometimes)."""
        rng, T = self.rng, self.T
        if not rng.random() < self.preset.lookalike_group:
            return
        look = Appearance.random(rng)
        shape = B.sample_shape(rng, 0.0)
        tm = int(rng.integers(T // 4, 3 * T // 4 + 1))
        heading = self.lateral_heading()
        xm, dm, sp = self.in_view_x(tm, rng.uniform(0.3, 0.7)), rng.uniform(4.0, 9.0), rng.uniform(0.9, 1.5)
        for k in range(int(rng.integers(2, 4))):
            X, D = self.walker_path(tm, xm, dm + k * rng.uniform(0.6, 1.2), sp, heading)
            X = X + k * rng.uniform(0.5, 0.9) * (-np.cos(heading))
            sh = B.BodyShape(**vars(shape))
            sh.height *= rng.uniform(0.97, 1.03)
            self.walking_actor("group", X, D, look=look, shape=sh, lookalike_group=self.look_group)
        self.look_group += 1

    def runners(self) -> None:
        """Fast movers across the view."""
        rng, preset, T = self.rng, self.preset, self.T
        for _ in range(int(rng.integers(preset.runners[0], preset.runners[1] + 1))):
            tm = int(rng.integers(T // 5, 4 * T // 5 + 1))
            X, D = self.walker_path(tm, self.in_view_x(tm, rng.uniform(0.3, 0.7)), rng.uniform(4.0, 10.0),
                                    rng.uniform(3.5, 7.0), self.lateral_heading())
            self.walking_actor("runner", X, D, run=True)

    def reenterers(self) -> None:
        """People who leave the view and come back (same identity, same track id)."""
        rng, preset, T, fps = self.rng, self.preset, self.T, self.fps
        for _ in range(int(rng.integers(preset.reenter[0], preset.reenter[1] + 1))):
            d = rng.uniform(4.0, 8.0)
            sp = rng.uniform(1.5, 2.2)
            t_exit = int(rng.integers(max(1, int(0.15 * T)), max(2, int(0.3 * T)) + 1))
            t_back = int(min(T - 3, t_exit + max(4, int(0.4 * T))))
            right = rng.random() < 0.5
            lo, hi = _view_at(self.centre, self.zoom, self.W, self.H, t_exit)
            X_edge = self.cam.lateral(hi if right else lo, d)
            sgn = 1.0 if right else -1.0
            body_half = 0.6  # m: arms and legs included
            excursion = body_half + max(0.4, sp * ((t_back - t_exit) / fps) / 2 - body_half)
            times = [t_exit - 10, t_exit, (t_exit + t_back) / 2, t_back, t_back + 10]
            xs = [X_edge - sgn * sp * 10 / fps, X_edge, X_edge + sgn * excursion, X_edge,
                  X_edge - sgn * sp * 10 / fps]
            # Make the return path visibly different: come back a little nearer or farther.
            ds = [d, d, d + rng.uniform(-0.5, 0.5), d + rng.uniform(-1.0, 1.0), d + rng.uniform(-1.5, 1.5)]
            X, D = _path(times, xs, ds, T, smooth=2)
            a = self.walking_actor("reenter", X, D)
            a.info = {"t_exit": t_exit, "t_back": t_back}

    def standers(self) -> None:
        """People acting in place (waving, crouching, jumping jacks, dancing, ...)."""
        rng, preset, T, t = self.rng, self.preset, self.T, self.t
        for _ in range(int(rng.integers(preset.standers[0], preset.standers[1] + 1))):
            d = rng.uniform(3.5, 10.0)
            X0 = self.cam.lateral(self.in_view_x(T // 2, rng.uniform(0.1, 0.9)), d)
            drift = rng.normal(0, 0.15, 2) / self.fps
            X = X0 + drift[0] * (t - T / 2)
            D = np.full(T, d) + drift[1] * (t - T / 2)
            action = str(
                rng.choice(["stand", "wave", "arms_up", "crouch", "jumping_jacks", "dance", "kick", "point"])
            )
            omega = 2 * np.pi * rng.uniform(0.3, 1.0) / self.fps
            self.new_actor(
                "stander",
                action=action,
                X=X,
                D=D,
                yaw=np.full(T, rng.normal(0, 0.7)) + _smooth(np.cumsum(rng.normal(0, 0.03, T)), 3),
                phase=rng.uniform(0, 6.3) + omega * t,
                amount=np.ones(T),
            )

    def far_crowd(self) -> None:
        """A far crowd (tiny people, covered by an ignore region, never annotated), sometimes."""
        rng, T, t = self.rng, self.T, self.t
        self.crowd_groups = int(rng.random() < self.preset.crowd_prob)
        for g in range(self.crowd_groups):
            d0 = rng.uniform(*CROWD_DEPTH)
            xc = self.cam.lateral(self.in_view_x(T // 2, rng.uniform(0.15, 0.85)), d0)
            drift = rng.uniform(-0.6, 0.6) / self.fps
            for _ in range(int(rng.integers(3, 9))):
                d = d0 + rng.uniform(-2.0, 2.0)
                X = xc + rng.uniform(-3.0, 3.0) + drift * t
                D = np.full(T, d)
                if rng.random() < 0.5:
                    X = X + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2) / self.fps * t
                    self.walking_actor("crowd", X, D, crowd_group=g)
                else:
                    self.new_actor(
                        "crowd",
                        action="stand",
                        X=X,
                        D=D,
                        yaw=np.full(T, rng.uniform(-np.pi, np.pi)),
                        phase=rng.uniform(0, 6.3) + 0.3 * t,
                        amount=np.ones(T),
                        crowd_group=g,
                    )

    def occluders(self) -> list[StaticObject]:
        """Static occluders at depths between the people."""
        rng, preset = self.rng, self.preset
        objects = []
        for _ in range(int(rng.integers(preset.occluders[0], preset.occluders[1] + 1))):
            d = rng.uniform(2.8, 9.0)
            objects.append(
                StaticObject(
                    ObjectSpec.random(rng),
                    self.cam.lateral(self.in_view_x(int(rng.integers(self.T)), rng.uniform(0.1, 0.9)), d),
                    d,
                )
            )
        return objects


def make_video_script(rng: np.random.Generator, preset: Preset) -> VideoScript:
    """Script one video: camera path, panorama, people (walkers, crossers, runners, look-alikes, ...)."""
    W, H = preset.video_size
    T = int(rng.integers(preset.frames[0], preset.frames[1] + 1))
    f = W * rng.uniform(0.9, 1.2)
    horizon = H * rng.uniform(0.22, 0.42)
    cam_h = rng.uniform(1.4, 2.0)
    centre, zoom, info = _camera_path(rng, preset, T, H)
    cam = Camera(focal=f, horizon=horizon, cam_h=cam_h, cx=0.0)
    pano, origin = _panorama(rng, cam, centre, zoom, W, H)
    cast = _Cast(rng, preset, cam, centre, zoom, T)
    cast.crossing_pairs()
    cast.walkers()
    cast.lookalike_group()
    cast.runners()
    cast.reenterers()
    cast.standers()
    cast.far_crowd()
    objects = cast.occluders()
    # Track ids are 1..N in order of creation (crowd members' ids are never written).
    info.update({"n_actors": sum(a.role != "crowd" for a in cast.actors), "crowd_groups": cast.crowd_groups,
                 "lookalike_groups": cast.look_group})
    return VideoScript(size=(W, H), n_frames=T, fps=preset.fps, camera=cam, pan_centre=centre, zoom=zoom,
                       world_origin=origin, panorama=pano, actors=cast.actors, objects=objects,
                       blur_exposure=preset.blur_exposure, info=info)


def _actor_view(script: VideoScript, a: Actor, t: int, A: np.ndarray) -> tuple[np.ndarray, float]:
    """Frame position of ``a``'s ground point and its px/m at frame ``t`` under camera affine ``A``."""
    g = script.camera.ground_point(a.X[t], a.D[t])
    return A[:, :2] @ g + A[:, 2], A[0, 0] * script.camera.focal / a.D[t]


def frame_scene(
    script: VideoScript, t: int
) -> tuple[np.ndarray, list, list[tuple[Actor, PersonView]], np.ndarray]:
    """Background, items and posed actors of frame ``t``.

    Returns ``(background (H, W, 3) uint8, items, [(actor, view)], background velocity px/frame)``.
    """
    W, H = script.size
    A = script.camera_affine(t)
    Ao = A.copy()
    Ao[:, 2] += A[:, :2] @ script.world_origin  # panorama pixel -> frame pixel
    bg = cv2.warpAffine(script.panorama, Ao, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    tp = max(t - 1, 0)
    Ap = script.camera_affine(tp)
    # Background velocity: motion of the frame centre's world point between frames.
    wc = np.linalg.solve(A[:, :2], np.array([W / 2, H / 2]) - A[:, 2])
    bg_vel = (A[:, :2] @ wc + A[:, 2]) - (Ap[:, :2] @ wc + Ap[:, 2]) if t > 0 else np.zeros(2)
    items: list = []
    posed: list[tuple[Actor, PersonView]] = []
    margin = 0.6 * max(W, H)
    for a in script.actors:
        origin, s = _actor_view(script, a, t, A)
        if not (-margin < origin[0] < W + margin and -margin < origin[1] < H + 2.5 * margin):
            continue
        prev, _ = _actor_view(script, a, tp, Ap)
        vel = origin - prev if t > 0 else np.zeros(2)
        pose = B.action_pose(
            a.action, float(a.phase[t]), a.style, float(a.amount[t]) if a.action in ("walk", "run") else 1.0
        )
        v = build_person_view(
            a.uid,
            a.shape,
            a.look,
            pose,
            float(a.yaw[t]),
            origin,
            s,
            float(a.D[t]),
            velocity=vel,
            annotate=a.role != "crowd",
        )
        items.append(v)
        posed.append((a, v))
    for k, o in enumerate(script.objects):
        g = script.camera.ground_point(o.X, o.D)
        gf = A[:, :2] @ g + A[:, 2]
        items.append(ObjectView(o.spec, gf, A[0, 0] * script.camera.focal / o.D, o.D, velocity=bg_vel))
    return bg, items, posed, bg_vel
