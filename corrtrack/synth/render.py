"""Rasterise people and objects with depth order; per-pixel depth-rank buffer; visibility flags.

Conventions: image coordinates in pixels, x right, y down, the centre of pixel ``(row i, col j)`` at
``(x, y) = (j, i)``. A joint is *inside* the image when ``0 <= x <= W-1`` and ``0 <= y <= H-1``.

Rendering is a painter's algorithm over scene items sorted far to near. Every item gets a *rank*
(1 = farthest; 0 = background) and writes its rank into the ``rank`` buffer wherever its coverage is
at least 0.5, so after the last item ``rank[i, j]`` names the nearest item at each pixel. Visibility of
a joint of the person with rank ``r`` at pixel ``(x, y)``:

* ``v = 0`` outside the image;
* ``v = 1`` when ``rank[round(y), round(x)] > r`` (a nearer person or object covers it), or when it is a
  face point on the far side of the person's own head (:func:`corrtrack.synth.body.face_hidden`);
* ``v = 2`` otherwise. Limbs hidden behind the person's own torso count as visible (self-occlusion).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from corrtrack import keypoints as K
from corrtrack.synth import body as B
from corrtrack.synth.textures import Appearance, Material, ObjectSpec, draw_object


@dataclass
class Part:
    """A tapered capsule from ``a`` to ``b`` (pixels) with radii ``ra``, ``rb`` (pixels)."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float
    material: Material
    z: float  # within-person depth (m, larger = nearer): parts are drawn by z
    kind: str = "limb"  # limb | head | poly
    poly: np.ndarray | None = None  # (N, 2) pixels for kind "poly" (a..b is then its axis, for texture)


@dataclass
class HeadInfo:
    """What the head shader needs: centre, up axis, radii (px), where the face points, hair style."""

    center: np.ndarray
    up: np.ndarray  # unit vector in the image, chin -> crown
    rv: float  # half height (px)
    rh: float  # half width (px)
    face_dx: float  # sideways face offset, in units of rh (-1 .. 1)
    facing: float  # cosine between the face direction and the camera direction
    look: Appearance
    eyes: list[np.ndarray]  # visible eyes, image px
    mouth: np.ndarray | None
    nose: np.ndarray | None


@dataclass
class PersonView:
    """One person in one image: joints, parts to draw, depth and motion.

    ``joints``: ``(19, 2)`` image pixels in world-joint order (``keypoints.WORLD_JOINT_NAMES``).
    """

    uid: int
    joints: np.ndarray
    face_hidden: np.ndarray
    parts: list[Part]
    head: HeadInfo
    head_box: np.ndarray  # (4,) x0, y0, x1, y1 pixels (amodal)
    depth: float  # distance from the camera (m); larger = farther
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # px / frame, for motion blur
    annotate: bool = True  # False for far crowd members
    height_px: float = 0.0
    scale: float = 1.0  # pixels per metre at this person's depth (texture coordinates)


@dataclass
class ObjectView:
    """A static object: ``ground`` is the image position (px) of its ground-contact centre."""

    spec: ObjectSpec
    ground: np.ndarray
    scale: float  # px per metre
    depth: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))


@dataclass
class ItemStats:
    """Per item after rendering: rank, pixels covered in the image (amodal), visible pixels, boxes."""

    rank: int
    amodal_px: int = 0
    visible_px: int = 0
    amodal_box: np.ndarray | None = None  # x0, y0, x1, y1 (inclusive pixel bounds) or None
    visible_box: np.ndarray | None = None


class _PartList:
    """Drawable parts of one posed person, in drawing order: ``add`` joins two projected points, ``add_pt``
    two arbitrary image points; depth = the mean depth of the two points plus a bias (``add``)."""

    def __init__(self, xy: np.ndarray, z: np.ndarray):
        self.xy, self.z = xy, z
        self.parts: list[Part] = []

    def add(self, pa, pb, ra, rb, mat, bias=0.0) -> None:
        xy, z = self.xy, self.z
        self.parts.append(
            Part(xy[pa].copy(), xy[pb].copy(), float(ra), float(rb), mat, float((z[pa] + z[pb]) / 2 + bias))
        )

    def add_pt(self, a, b, ra, rb, mat, zz) -> None:
        self.parts.append(
            Part(np.asarray(a, np.float64), np.asarray(b, np.float64), float(ra), float(rb), mat, float(zz))
        )


def _skirt(pl: _PartList, look: Appearance, h: float, s: float, spine: np.ndarray, r_waist: float,
           z_torso: float) -> None:
    """A flared skirt: quad from the waist to just above the knees, wide enough to cover both thighs."""
    xy, P = pl.xy, B.P
    hem_l = xy[P["left_hip"]] + 0.6 * (xy[P["left_knee"]] - xy[P["left_hip"]])
    hem_r = xy[P["right_hip"]] + 0.6 * (xy[P["right_knee"]] - xy[P["right_hip"]])
    waist_c = xy[P["pelvis"]] + 0.1 * (xy[P["neck_base"]] - xy[P["pelvis"]])
    across = np.array([-spine[1], spine[0]]) / (np.linalg.norm(spine) + 1e-9)
    flare = 0.06 * h * s
    e = [waist_c + across * r_waist, waist_c - across * r_waist]
    hem = sorted([hem_l, hem_r], key=lambda p: float(np.dot(p - waist_c, across)))
    quad = np.array([e[0], e[1], hem[0] - across * flare, hem[1] + across * flare])
    quad = cv2.convexHull(quad.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    pl.parts.append(
        Part(waist_c.copy(), (hem_l + hem_r) / 2, 0.0, 0.0, look.pants, z_torso + 0.009, kind="poly", poly=quad)
    )


def _torso(pl: _PartList, shape: B.BodyShape, look: Appearance, yaw: float, s: float) -> None:
    """Hips, skirt, long hair, shirt and neck. The torso is a tapered capsule from just above the pelvis
    to the upper chest; its width follows the projected shoulder / hip spacing (broad from the front,
    narrow in profile)."""
    xy, z, P, h = pl.xy, pl.z, B.P, shape.height
    pel, neck = xy[P["pelvis"]], xy[P["neck_base"]]
    sh_half = np.linalg.norm(xy[P["left_shoulder"]] - xy[P["right_shoulder"]]) / 2
    hip_half = np.linalg.norm(xy[P["left_hip"]] - xy[P["right_hip"]]) / 2
    depth_r = 0.07 * h * shape.build * s
    r_chest = max(depth_r, 0.92 * sh_half)
    r_waist = max(depth_r * 0.9, 0.9 * hip_half + 0.02 * h * s)
    spine = neck - pel
    chest = pel + 0.78 * spine
    waist = pel + 0.12 * spine
    z_torso = float(z[P["pelvis"]] + z[P["neck_base"]]) / 2
    # Hips / seat in the leg material, behind the shirt.
    pl.add(P["left_hip"], P["right_hip"], 0.055 * h * shape.build * s, 0.055 * h * shape.build * s, look.pants,
           -0.004)
    if look.legwear == "skirt":
        _skirt(pl, look, h, s, spine, r_waist, z_torso)
    if look.hair_style == "long":
        back = B.rot_y(yaw) @ np.array([0, 0, -0.045 * h])
        hc = xy[P["head_center"]]
        tail = xy[P["neck_base"]] + 0.35 * (xy[P["pelvis"]] - xy[P["neck_base"]]) + s * np.array([back[0], 0])
        pl.add_pt(hc, tail, 0.05 * h * shape.head * s, 0.06 * h * s, look.hair, z[P["head_center"]] + back[2])
    pl.add_pt(waist, chest, r_waist, r_chest, look.shirt, z_torso + 0.006)
    pl.add(P["neck_base"], P["head_bottom"], 0.028 * h * s, 0.026 * h * s, look.skin, -0.01)


def _limbs(pl: _PartList, shape: B.BodyShape, look: Appearance, s: float) -> None:
    """Arms (sleeves long or short), hands, legs (long trousers, shorts or bare) and shoes of both sides."""
    xy, z, P, h = pl.xy, pl.z, B.P, shape.height
    limb_r = 0.032 * h * shape.limb * s
    legs_long = look.legwear == "long"
    for side in ("left", "right"):
        sh, el, wr, hd = P[f"{side}_shoulder"], P[f"{side}_elbow"], P[f"{side}_wrist"], P[f"{side}_hand"]
        hp, kn, an, toe = P[f"{side}_hip"], P[f"{side}_knee"], P[f"{side}_ankle"], P[f"{side}_toe"]
        bias = 0.03
        if look.sleeves == "long":
            pl.add(sh, el, limb_r * 1.15, limb_r, look.shirt, bias)
            pl.add(el, wr, limb_r, limb_r * 0.8, look.shirt, bias)
        else:
            mid = xy[sh] + 0.5 * (xy[el] - xy[sh])
            pl.add(sh, el, limb_r * 0.95, limb_r * 0.85, look.skin, bias - 0.0005)
            pl.add_pt(xy[sh], mid, limb_r * 1.08, limb_r * 1.02, look.shirt, (z[sh] + z[el]) / 2 + bias)
            pl.add(el, wr, limb_r * 0.85, limb_r * 0.7, look.skin, bias)
        pl.add(wr, hd, limb_r * 0.75, limb_r * 0.65, look.skin, bias + 0.001)
        thigh_r = 0.05 * h * shape.limb * s
        shin_r = 0.037 * h * shape.limb * s
        if look.legwear == "shorts":
            mid = xy[hp] + 0.65 * (xy[kn] - xy[hp])
            pl.add(hp, kn, thigh_r * 0.95, shin_r * 1.05, look.skin, 0.0)
            pl.add_pt(xy[hp], mid, thigh_r * 1.08, thigh_r * 0.95, look.pants, (z[hp] + z[kn]) / 2 + 0.0005)
        else:
            pl.add(hp, kn, thigh_r, shin_r * 1.1, look.pants if look.legwear == "long" else look.skin, 0.0)
        pl.add(kn, an, shin_r, shin_r * 0.7, look.pants if legs_long else look.skin, 0.0)
        pl.add(P[f"{side}_heel"], toe, shin_r * 0.75, shin_r * 0.6, look.shoes, 0.001)


def _head(pl: _PartList, pts3: np.ndarray, shape: B.BodyShape, look: Appearance, yaw: float,
          s: float) -> tuple[HeadInfo, np.ndarray, np.ndarray]:
    """Ears, bun, the head capsule (along the projected head axis) and a cap; returns the head's drawing
    info, the face-hidden flags and the head box (x0, y0, x1, y1)."""
    xy, z, P, h = pl.xy, pl.z, B.P, shape.height
    hc = xy[P["head_center"]]
    top = xy[P["head_top"]]
    up = top - hc
    rv = float(np.linalg.norm(up))
    up = up / (rv + 1e-9) if rv > 1e-6 else np.array([0.0, -1.0])
    rh = B.HEAD_RX * shape.head * h * s
    rv = max(rv, rh * 1.05)
    fwd3 = B.rot_y(yaw) @ (pts3[P["nose"]] - pts3[P["head_center"]])
    facing = float(fwd3[2] / (np.linalg.norm(fwd3) + 1e-9))
    side_axis = np.array([-up[1], up[0]])
    face_dx = float(np.clip(np.dot(xy[P["nose"]] - hc, side_axis) / (rh + 1e-9), -1.2, 1.2))
    hidden = B.face_hidden(pts3, yaw, shape)
    eyes = [xy[P[e]].copy() for e in ("left_eye", "right_eye") if not hidden[B.J[e]]]
    nose_vis = not hidden[B.J["nose"]]
    head = HeadInfo(
        center=hc.copy(),
        up=up,
        rv=rv,
        rh=rh,
        face_dx=face_dx,
        facing=facing,
        look=look,
        eyes=eyes,
        mouth=xy[P["mouth"]].copy() if nose_vis and facing > 0.2 else None,
        nose=xy[P["nose"]].copy() if nose_vis and abs(face_dx) > 0.45 else None,
    )
    # Ears behind or in front of the head by their depth.
    z_head = float(z[P["head_center"]]) + 0.02
    for ear in ("left_ear", "right_ear"):
        ez = float(z[P[ear]])
        behind = ez < float(z[P["head_center"]]) - 0.2 * rh / s
        pl.add_pt(xy[P[ear]], xy[P[ear]], 0.014 * h * shape.head * s, 0.014 * h * shape.head * s, look.skin,
                  z_head - 0.001 if behind else z_head + 0.001)
    if look.hair_style == "bun":
        bun = hc + up * rv * 0.85 - side_axis * face_dx * rh * 0.6
        pl.add_pt(bun, bun, rh * 0.45, rh * 0.45, look.hair, z_head - 0.0005)
    pl.parts.append(Part(hc - up * (rv - rh), hc + up * (rv - rh), rh, rh, look.skin, z_head, kind="head"))
    if look.hair_style == "cap" and look.cap is not None and facing > -0.5:
        brim_base = hc + up * rv * 0.35 + side_axis * np.sign(face_dx) * rh * min(1.0, abs(face_dx) * 1.2)
        brim_tip = brim_base + side_axis * face_dx * rh * 0.7 - up * rh * 0.05
        pl.add_pt(brim_base, brim_tip, rh * 0.22, rh * 0.18, look.cap, z_head + 0.0005)
    ex = np.array([np.hypot(rv * up[0], rh * side_axis[0]), np.hypot(rv * up[1], rh * side_axis[1])])
    return head, hidden, np.concatenate([hc - ex, hc + ex])


def build_person_view(
    uid: int,
    shape: B.BodyShape,
    look: Appearance,
    pose: B.Pose,
    yaw: float,
    origin: np.ndarray,
    scale: float,
    depth: float,
    roll: float = 0.0,
    velocity: np.ndarray | None = None,
    annotate: bool = True,
) -> PersonView:
    """Pose a person and turn the body into drawable parts (torso, limbs, head, in drawing order).

    Args:
        origin: image position (px) of the ground point below the pelvis.
        scale: pixels per metre at the person's depth (already including any camera zoom).
    """
    pts3 = B.forward_kinematics(shape, pose)
    xy, z = B.project(pts3, yaw, np.asarray(origin, np.float64), scale, roll)
    pl = _PartList(xy, z)
    _torso(pl, shape, look, yaw, scale)
    _limbs(pl, shape, look, scale)
    head, hidden, head_box = _head(pl, pts3, shape, look, yaw, scale)
    return PersonView(
        uid=uid,
        joints=xy[: K.NUM_WORLD_JOINTS].copy(),
        face_hidden=hidden,
        parts=pl.parts,
        head=head,
        head_box=head_box,
        depth=float(depth),
        velocity=np.zeros(2) if velocity is None else np.asarray(velocity, np.float64),
        annotate=annotate,
        height_px=float(shape.height * scale),
        scale=float(scale),
    )


def _part_bounds(p: Part) -> tuple[float, float, float, float]:
    if p.poly is not None:
        return (
            p.poly[:, 0].min() - 1.5,
            p.poly[:, 1].min() - 1.5,
            p.poly[:, 0].max() + 1.5,
            p.poly[:, 1].max() + 1.5,
        )
    r = max(p.ra, p.rb) + 1.5
    return (
        min(p.a[0], p.b[0]) - r,
        min(p.a[1], p.b[1]) - r,
        max(p.a[0], p.b[0]) + r,
        max(p.a[1], p.b[1]) + r,
    )


def _shade_head(head: HeadInfo, px: np.ndarray, py: np.ndarray, cov: np.ndarray, scale: float) -> np.ndarray:
    """Colours of head pixels: skin where the face is, hair (or cap) elsewhere."""
    look = head.look
    dx, dy = px - head.center[0], py - head.center[1]
    side = np.array([-head.up[1], head.up[0]])
    a = (dx * head.up[0] + dy * head.up[1]) / head.rv
    b = (dx * side[0] + dy * side[1]) / head.rh
    u, v = a * head.rv / scale, b * head.rh / scale
    skin = look.skin.sample(u, v)
    if look.hair_style == "bald":
        is_hair = np.zeros_like(a, dtype=bool)
        rf = 0.0
    else:
        rf = 0.8 * np.clip((head.facing + 0.5) / 0.9, 0, 1) ** 0.7
        bf, af = 0.55 * np.clip(head.face_dx, -1, 1), -0.12
        in_face = ((b - bf) ** 2 + (a - af) ** 2 < rf * rf) & (a < 0.32)
        is_hair = ~in_face
    col = skin
    if is_hair.any():
        hair = look.hair.sample(u[is_hair], v[is_hair])
        col = col.copy()
        col[is_hair] = hair
        if look.hair_style == "cap" and look.cap is not None:
            capm = is_hair & (a > 0.05)
            col[capm] = look.cap.sample(u[capm], v[capm])
    # Round shading: darker towards the outline, light from the upper left.
    rr = np.clip(a * a + b * b, 0, 1)
    shade = 0.68 + 0.32 * np.sqrt(1 - rr) + 0.06 * (a - b * 0.5)
    return col * shade[:, None]


def rasterize_person(
    view: PersonView, frame_w: int, frame_h: int, pad: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """Draw one person into its own canvas.

    Returns ``(rgb (h, w, 3) float32, coverage (h, w) float32, (x0, y0))`` where ``(x0, y0)`` is the
    canvas' top-left pixel in the frame (the canvas is clipped to the frame, grown by ``pad`` for blur),
    or None when the person is entirely outside.
    """
    bounds = np.array([_part_bounds(p) for p in view.parts])
    x0 = int(np.floor(bounds[:, 0].min())) - pad
    y0 = int(np.floor(bounds[:, 1].min())) - pad
    x1 = int(np.ceil(bounds[:, 2].max())) + pad + 1
    y1 = int(np.ceil(bounds[:, 3].max())) + pad + 1
    x0c, y0c, x1c, y1c = max(x0, -pad), max(y0, -pad), min(x1, frame_w + pad), min(y1, frame_h + pad)
    if x1c <= max(x0c, 0) or y1c <= max(y0c, 0) or x0c >= frame_w or y0c >= frame_h:
        return None
    w, h = x1c - x0c, y1c - y0c
    rgb = np.zeros((h, w, 3), np.float32)
    cov_all = np.zeros((h, w), np.float32)
    m_per_px = 1.0 / max(1e-6, view.scale)  # texture coordinates are in metres
    for part in sorted(view.parts, key=lambda p: p.z):
        bx0, by0, bx1, by1 = _part_bounds(part)
        ix0, iy0 = max(int(np.floor(bx0)), x0c), max(int(np.floor(by0)), y0c)
        ix1, iy1 = min(int(np.ceil(bx1)) + 1, x1c), min(int(np.ceil(by1)) + 1, y1c)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        gx = np.arange(ix0, ix1, dtype=np.float32)[None, :]
        gy = np.arange(iy0, iy1, dtype=np.float32)[:, None]
        ax, ay = np.float32(part.a[0]), np.float32(part.a[1])
        dx, dy = np.float32(part.b[0] - part.a[0]), np.float32(part.b[1] - part.a[1])
        L2 = float(dx * dx + dy * dy)
        rx, ry = gx - ax, gy - ay
        if L2 > 1e-9:
            t = np.clip((rx * dx + ry * dy) / np.float32(L2), 0, 1)
        else:
            t = np.zeros((iy1 - iy0, ix1 - ix0), np.float32)
        ex, ey = rx - t * dx, ry - t * dy
        dist = np.sqrt(ex * ex + ey * ey)
        r = np.float32(part.ra) + t * np.float32(part.rb - part.ra)
        if part.kind == "poly":
            mask = np.zeros((iy1 - iy0, ix1 - ix0), np.uint8)
            pts = np.round((part.poly - (ix0, iy0)) * 16).astype(np.int32)
            cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, 4)
            cov = mask.astype(np.float32) / 255.0
            dist = np.zeros_like(cov)
            r = np.full_like(cov, 1e3)
        else:
            cov = np.clip(r - dist + 0.5, 0, 1)
        m = cov > 0
        if not m.any():
            continue
        if part.kind == "head":
            px = np.broadcast_to(gx, m.shape)[m]
            py = np.broadcast_to(gy, m.shape)[m]
            col = _shade_head(view.head, px, py, cov[m], 1.0 / m_per_px)
        else:
            L = np.sqrt(L2)
            u = (t * np.float32(L))[m] * m_per_px
            if L > 1e-6:
                side = (rx * dy - ry * dx)[m] / np.float32(L)
            else:
                side = ex[m]
            v = side * m_per_px
            col = part.material.sample(u, v)
            rr = np.clip(dist[m] / np.maximum(r[m], 0.5), 0, 1)
            col = (
                col
                * (0.6 + 0.4 * np.sqrt(1 - rr * rr) + 0.05 * np.clip(side / np.maximum(r[m], 0.5), -1, 1))[
                    :, None
                ]
            )
        c = cov[m][:, None]
        sub_rgb = rgb[iy0 - y0c : iy1 - y0c, ix0 - x0c : ix1 - x0c]
        sub_cov = cov_all[iy0 - y0c : iy1 - y0c, ix0 - x0c : ix1 - x0c]
        sub_rgb[m] = col * c + sub_rgb[m] * (1 - c)
        sub_cov[m] = cov[m] + sub_cov[m] * (1 - cov[m])
        if part.kind == "head":
            _draw_face(view.head, rgb, (x0c, y0c))
    return rgb, cov_all, (x0c, y0c)


def _draw_face(head: HeadInfo, rgb: np.ndarray, origin: tuple[int, int]) -> None:
    """Eyes, mouth and a profile nose on a head big enough to show them."""
    if head.rh < 3.0:
        return
    ox, oy = origin
    sh = 4  # sub-pixel precision for cv2 drawing
    f = 1 << sh

    def P(p):
        return (int(round((p[0] - ox) * f)), int(round((p[1] - oy) * f)))

    eye_r = max(0.7, 0.13 * head.rh)
    for e in head.eyes:
        cv2.circle(rgb, P(e), int(eye_r * f), (25.0, 20.0, 20.0), -1, cv2.LINE_AA, sh)
        if head.rh >= 8:
            cv2.circle(
                rgb,
                P(e + np.array([0.25, -0.25]) * eye_r),
                int(eye_r * 0.35 * f),
                (230.0, 230.0, 230.0),
                -1,
                cv2.LINE_AA,
                sh,
            )
    if head.mouth is not None and head.rh >= 5:
        side = np.array([-head.up[1], head.up[0]])
        half = side * head.rh * 0.28 * max(0.3, head.facing)
        cv2.line(
            rgb,
            P(head.mouth - half),
            P(head.mouth + half),
            (120.0, 40.0, 40.0),
            max(1, int(head.rh / 10)),
            cv2.LINE_AA,
            sh,
        )
    if head.nose is not None:
        skin = head.look.skin.colours[0] * 0.92
        cv2.circle(
            rgb,
            P(head.nose),
            int(max(0.8, 0.2 * head.rh) * f),
            tuple(float(c) for c in skin),
            -1,
            cv2.LINE_AA,
            sh,
        )


def motion_kernel(velocity: np.ndarray, exposure: float) -> np.ndarray | None:
    """Line kernel for motion blur along ``velocity`` (px/frame); None when the blur is < 1.5 px."""
    length = float(np.linalg.norm(velocity)) * exposure
    if length < 1.5:
        return None
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    d = np.asarray(velocity, np.float64) / (np.linalg.norm(velocity) + 1e-9)
    for s in np.linspace(-length / 2, length / 2, max(3, 2 * n)):
        x, y = c + s * d[0], c + s * d[1]
        xi, yi = int(round(x)), int(round(y))
        if 0 <= xi < n and 0 <= yi < n:
            k[yi, xi] += 1
    return k / k.sum()


def _composite(
    frame: np.ndarray,
    rank: np.ndarray,
    rgb: np.ndarray,
    cov: np.ndarray,
    origin: tuple[int, int],
    item_rank: int,
    kernel: np.ndarray | None,
) -> tuple[int, np.ndarray | None]:
    """Blend a canvas into ``frame`` (float32) and write ``item_rank`` into ``rank`` where coverage >= 0.5.

    Returns the number of covered pixels and their inclusive box (x0, y0, x1, y1) in the frame.
    """
    H, W = rank.shape
    x0, y0 = origin
    h, w = cov.shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if fx1 <= fx0 or fy1 <= fy0:
        return 0, None
    sl = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    hard = cov[sl] >= 0.5
    if kernel is not None:
        pre = cv2.filter2D(rgb * cov[..., None], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        cov_b = cv2.filter2D(cov, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        pre, cov_b = pre[sl], cov_b[sl]
    else:
        pre, cov_b = rgb[sl] * cov[sl][..., None], cov[sl]
    dst = frame[fy0:fy1, fx0:fx1]
    dst *= (1 - cov_b)[..., None]
    dst += pre
    rank[fy0:fy1, fx0:fx1][hard] = item_rank
    n = int(hard.sum())
    if n == 0:
        return 0, None
    ys, xs = np.nonzero(hard)
    return n, np.array([xs.min() + fx0, ys.min() + fy0, xs.max() + fx0, ys.max() + fy0], np.float64)


def render_scene(
    background: np.ndarray,
    items: list[PersonView | ObjectView],
    blur_exposure: float = 0.5,
    background_velocity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[ItemStats]]:
    """Render ``items`` over ``background`` far to near.

    Args:
        background: ``(H, W, 3)`` uint8 RGB.
        items: people and objects; each item's ``depth`` orders the painting (ties by list order).
        blur_exposure: shutter fraction; an item moving ``v`` px/frame is blurred over ``exposure * v``.
        background_velocity: px/frame of the background (camera pan), for its motion blur.
    Returns:
        ``(image (H, W, 3) uint8 RGB, rank (H, W) int16, stats)`` with ``stats[i]`` for ``items[i]``.
    """
    H, W = background.shape[:2]
    frame = background.astype(np.float32)
    if background_velocity is not None:
        k = motion_kernel(background_velocity, blur_exposure)
        if k is not None:
            frame = cv2.filter2D(frame, -1, k, borderType=cv2.BORDER_REFLECT)
    rank = np.zeros((H, W), np.int16)
    order = sorted(range(len(items)), key=lambda i: (-items[i].depth, i))
    stats: list[ItemStats] = [ItemStats(rank=0) for _ in items]
    for r, i in enumerate(order, start=1):
        it = items[i]
        st = ItemStats(rank=r)
        stats[i] = st
        kernel = motion_kernel(it.velocity, blur_exposure)
        pad = 0 if kernel is None else kernel.shape[0] // 2 + 1
        if isinstance(it, PersonView):
            out = rasterize_person(it, W, H, pad)
            if out is None:
                continue
            rgb, cov, origin = out
        else:
            rgb, cov, anchor = draw_object(it.spec, it.scale)
            if pad:
                rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)))
                cov = np.pad(cov, ((pad, pad), (pad, pad)))
                anchor = (anchor[0] + pad, anchor[1] + pad)
            origin = (int(round(it.ground[0] - anchor[0])), int(round(it.ground[1] - anchor[1])))
        st.amodal_px, st.amodal_box = _composite(frame, rank, rgb, cov, origin, r, kernel)
    for st in stats:
        if st.amodal_px:
            ys, xs = np.nonzero(rank == st.rank)
            st.visible_px = int(len(xs))
            if len(xs):
                st.visible_box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)
    return np.clip(frame, 0, 255).astype(np.uint8), rank, stats


def joint_visibility(view: PersonView, item_rank: int, rank: np.ndarray) -> np.ndarray:
    """``(19,)`` int flags: 0 outside, 1 covered by a nearer item / far side of the head, 2 visible."""
    H, W = rank.shape
    x, y = view.joints[:, 0], view.joints[:, 1]
    inside = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    v = np.zeros(len(x), np.int64)
    xi = np.clip(np.round(x), 0, W - 1).astype(np.int64)
    yi = np.clip(np.round(y), 0, H - 1).astype(np.int64)
    covered = rank[yi, xi] > item_rank
    v[inside] = 2
    v[inside & (covered | view.face_hidden)] = 1
    return v
