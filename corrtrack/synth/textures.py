"""Procedural textures: clothing materials, skin and hair, appearances, backgrounds, occluder objects.

Clothing is never flat colour: every material is a pattern (stripes, checks, plaid, dots, noise,
camouflage, gradient) evaluated in the coordinates of the body part it covers, in metres, so a pattern
moves, turns and scales with the limb it is printed on (a tracker that matches patterns across frames
sees consistent texture). Colours are RGB floats 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

PATTERNS = ("stripes", "checks", "plaid", "dots", "noise", "camo", "gradient", "zigzag")

SKIN_TONES = np.array(
    [
        (255, 224, 196),
        (241, 194, 155),
        (224, 172, 125),
        (198, 134, 90),
        (170, 110, 70),
        (141, 85, 50),
        (110, 65, 38),
        (84, 50, 30),
        (236, 188, 180),
        (250, 210, 170),
    ],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [
        (20, 16, 14),
        (45, 30, 20),
        (80, 50, 30),
        (120, 80, 45),
        (170, 130, 80),
        (220, 190, 120),
        (150, 60, 30),
        (160, 160, 160),
        (230, 230, 225),
        (60, 40, 90),
    ],
    dtype=np.float32,
)


def _vivid(rng: np.random.Generator) -> np.ndarray:
    """A clothing colour: saturated, muted or near-neutral."""
    kind = rng.random()
    hue = rng.uniform(0, 180)
    if kind < 0.55:
        sat, val = rng.uniform(120, 255), rng.uniform(90, 250)
    elif kind < 0.85:
        sat, val = rng.uniform(30, 120), rng.uniform(60, 220)
    else:
        sat, val = rng.uniform(0, 25), rng.uniform(20, 245)
    hsv = np.uint8([[[hue, sat, val]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


@dataclass
class Material:
    """A procedural surface pattern.

    ``sample(u, v)`` takes part-local coordinates in metres (``u`` along the limb, ``v`` across it) and
    returns ``(N, 3)`` RGB floats. ``period`` is the pattern's repeat length in metres.
    """

    kind: str
    colours: np.ndarray  # (3, 3) RGB
    period: float = 0.08
    angle: float = 0.0
    noise: float = 12.0
    tile: np.ndarray = field(default_factory=lambda: np.zeros((32, 32), np.float32))  # values in [-1, 1]

    @staticmethod
    def random(rng: np.random.Generator, kinds: tuple[str, ...] = PATTERNS, colours=None) -> "Material":
        if colours is None:
            colours = np.stack([_vivid(rng) for _ in range(3)])
        return Material(
            kind=str(rng.choice(kinds)),
            colours=np.asarray(colours, np.float32),
            period=float(rng.uniform(0.035, 0.13)),
            angle=float(rng.choice([0, 0, np.pi / 2, np.pi / 4, rng.uniform(0, np.pi)])),
            noise=float(rng.uniform(6, 22)),
            tile=noise_tile(rng, 32, 4),
        )

    @staticmethod
    def plain(rng: np.random.Generator, colour, noise: float = 8.0, kind: str = "skin") -> "Material":
        c = np.asarray(colour, np.float32)
        return Material(
            kind=kind,
            colours=np.stack([c, c * 0.85, c * 1.1]),
            period=0.05,
            noise=noise,
            tile=noise_tile(rng, 32, 6),
        )

    def sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        c0, c1, c2 = self.colours
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        a = (u * ca + v * sa) / self.period
        b = (-u * sa + v * ca) / self.period
        ti = (np.floor(u * 90.0).astype(np.int64) & 31, np.floor(v * 90.0).astype(np.int64) & 31)
        n = self.tile[ti]
        k = self.kind
        if k == "stripes":
            w = (np.sin(2 * np.pi * a) > 0.0)[:, None]
            col = np.where(w, c0, c1)
        elif k == "checks":
            w = ((np.floor(a) + np.floor(b)) % 2 == 0)[:, None]
            col = np.where(w, c0, c1)
        elif k == "plaid":
            sa_, sb_ = np.sin(2 * np.pi * a) > 0.3, np.sin(2 * np.pi * b) > 0.3
            col = np.where((sa_ & sb_)[:, None], c2, np.where((sa_ | sb_)[:, None], c1, c0))
        elif k == "dots":
            fa, fb = a - np.round(a), b - np.round(b)
            w = (fa * fa + fb * fb < 0.09)[:, None]
            col = np.where(w, c1, c0)
        elif k == "zigzag":
            tri = np.abs(((b * 2.0) % 2.0) - 1.0)
            w = (np.sin(2 * np.pi * (a + 0.6 * tri)) > 0)[:, None]
            col = np.where(w, c0, c2)
        elif k == "noise":
            t = np.clip(n * 0.5 + 0.5, 0, 1)[:, None]
            col = c0 * (1 - t) + c1 * t
        elif k == "camo":
            m = self.tile[(np.floor(a * 6).astype(np.int64) & 31, np.floor(b * 6).astype(np.int64) & 31)]
            col = np.where((m > 0.25)[:, None], c1, np.where((m < -0.25)[:, None], c2, c0))
        elif k == "gradient":
            t = (0.5 + 0.5 * np.sin(2 * np.pi * a / 4.0))[:, None]
            col = c0 * (1 - t) + c2 * t
        elif k == "hair":
            streak = self.tile[
                (np.floor(u * 25.0).astype(np.int64) & 31, np.floor(v * 300.0).astype(np.int64) & 31)
            ]
            col = c0[None, :] * (1.0 + 0.25 * streak[:, None])
        else:  # skin / plain
            col = np.broadcast_to(c0, (u.shape[0], 3))
        return col + (self.noise * n)[:, None]


def noise_tile(rng: np.random.Generator, size: int = 32, coarse: int = 4) -> np.ndarray:
    """Smooth random noise, ``(size, size)`` float32 in [-1, 1] (coarse random grid, cubic upsampling)."""
    g = rng.uniform(-1, 1, (coarse, coarse)).astype(np.float32)
    g = np.concatenate([g, g[:1]], 0)
    g = np.concatenate([g, g[:, :1]], 1)  # wrap so the tile repeats without a seam
    t = cv2.resize(g, (size + size // coarse, size + size // coarse), interpolation=cv2.INTER_CUBIC)[
        :size, :size
    ]
    fine = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    t = 0.75 * t + 0.25 * fine
    return np.clip(t / (np.abs(t).max() + 1e-6), -1, 1).astype(np.float32)


@dataclass
class Appearance:
    """What one person wears and looks like (shared verbatim by look-alikes)."""

    skin: Material
    hair: Material
    hair_style: str  # short | long | bald | cap | bun
    shirt: Material
    sleeves: str  # short | long
    pants: Material
    legwear: str  # long | shorts | skirt
    shoes: Material
    cap: Material | None = None

    @staticmethod
    def random(rng: np.random.Generator) -> "Appearance":
        skin = Material.plain(
            rng, SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.05), noise=5.0
        )
        hair_c = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
        hair = Material.plain(rng, hair_c, noise=10.0, kind="hair")
        style = str(rng.choice(["short", "short", "long", "long", "bald", "cap", "bun"]))
        shirt = Material.random(rng)
        pants_kinds = ("noise", "stripes", "checks", "camo", "gradient", "plaid")
        pants = Material.random(rng, pants_kinds)
        if rng.random() < 0.5:  # jeans / dark trousers are common
            base = np.array([rng.uniform(20, 70), rng.uniform(30, 80), rng.uniform(60, 140)], np.float32)
            if rng.random() < 0.4:
                base = np.full(3, rng.uniform(15, 60), np.float32)
            pants = Material(
                kind="noise",
                colours=np.stack([base, base * 1.35, base * 0.7]),
                period=0.05,
                noise=14.0,
                tile=noise_tile(rng, 32, 8),
            )
        shoes = Material.plain(rng, _vivid(rng) * rng.uniform(0.3, 1.0), noise=6.0, kind="noise")
        cap = Material.random(rng, ("stripes", "checks", "noise")) if style == "cap" else None
        return Appearance(
            skin=skin,
            hair=hair,
            hair_style=style,
            shirt=shirt,
            sleeves=str(rng.choice(["short", "long"])),
            pants=pants,
            legwear=str(rng.choice(["long", "long", "long", "shorts", "skirt"])),
            shoes=shoes,
            cap=cap,
        )


# --------------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------------
BACKGROUND_STYLES = ("street", "park", "indoor", "court", "abstract")


def _noise_image(rng: np.random.Generator, w: int, h: int, cell: int) -> np.ndarray:
    gw, gh = max(2, w // cell + 2), max(2, h // cell + 2)
    g = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _fbm(rng: np.random.Generator, w: int, h: int, cells=(64, 24, 8, 3)) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for c in cells:
        out += amp * _noise_image(rng, w, h, c)
        amp *= 0.55
    return out / 2.0


def _sky(rng: np.random.Generator, img: np.ndarray, style: str, horizon: float) -> None:
    """Upper part: a sky / wall gradient down to the horizon, in place."""
    yy = np.arange(img.shape[0], dtype=np.float32)[:, None]
    top_a, top_b = _vivid(rng) * 0.6 + 90, _vivid(rng) * 0.5 + 100
    if style in ("street", "park"):
        top_a = np.array([rng.uniform(90, 170), rng.uniform(140, 200), rng.uniform(200, 255)], np.float32)
        top_b = np.array([rng.uniform(200, 240), rng.uniform(210, 240), rng.uniform(220, 255)], np.float32)
    t = np.clip(yy / max(1.0, horizon), 0, 1)[..., None]
    img[:] = top_a * (1 - t) + top_b * t


def _ground(rng: np.random.Generator, img: np.ndarray, style: str, horizon: float, focal: float, cam_h: float,
            x0: float) -> None:
    """Ground: a perspective pattern on the plane y = 0 (camera at height cam_h), in place."""
    h, w = img.shape[:2]
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    hz = int(np.clip(horizon, 0, h))
    ground_a, ground_b = _vivid(rng) * 0.5 + 60, _vivid(rng) * 0.5 + 60
    if style == "park":
        ground_a = np.array([rng.uniform(40, 90), rng.uniform(110, 170), rng.uniform(30, 70)], np.float32)
        ground_b = ground_a * rng.uniform(0.75, 0.9)
    if hz >= h:
        return
    gy = yy[hz:] - horizon + 0.5
    gy = np.maximum(gy, 0.5)
    depth = focal * cam_h / gy  # metres
    gx = (xx - x0) * depth / focal
    tile = rng.uniform(0.5, 2.0)
    if style in ("indoor", "court"):
        pat = ((np.floor(gx / tile) + np.floor(depth / tile)) % 2)[..., None]
    elif style == "street":
        pat = ((np.floor(depth / (tile * 0.5)) % 2) * 0.4 + (np.abs(gx % 3.0) < 0.1) * 0.6)[..., None]
    else:
        pat = np.zeros_like(gx)[..., None] + 0.0
    g = ground_a * (1 - pat) + ground_b * pat
    fade = np.clip(gy / (h - horizon + 1), 0, 1)[..., None]
    img[hz:] = g * (0.75 + 0.35 * fade)
    if style == "court":  # painted lines on the floor
        for lx in rng.uniform(-8, 8, 3):
            line = np.abs(gx - lx) < 0.06
            img[hz:][line] = (235, 235, 235)


def _tree(rng: np.random.Generator, canvas: np.ndarray, horizon: float) -> None:
    h, w = canvas.shape[:2]
    cx, base = rng.uniform(0, w), horizon + rng.uniform(-0.05, 0.1) * h
    r = rng.uniform(0.05, 0.18) * h
    cv2.rectangle(
        canvas,
        (int(cx - r * 0.12), int(base - r * 1.6)),
        (int(cx + r * 0.12), int(base)),
        (90, 60, 35),
        -1,
    )
    green = (rng.uniform(20, 70), rng.uniform(90, 160), rng.uniform(20, 60))
    for _ in range(5):
        cv2.circle(
            canvas,
            (int(cx + rng.normal(0, r * 0.4)), int(base - r * 1.6 + rng.normal(0, r * 0.3))),
            int(r * rng.uniform(0.5, 0.9)),
            green,
            -1,
        )


def _building(rng: np.random.Generator, canvas: np.ndarray, horizon: float, col: tuple) -> None:
    h, w = canvas.shape[:2]
    x1, x2 = sorted(rng.uniform(-0.1, 1.1, 2) * w)
    y1 = rng.uniform(0.0, 0.8) * horizon
    cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(horizon + 2)), col, -1)
    win = tuple(float(v) for v in (np.array(col) * rng.uniform(0.4, 0.7)))
    step = rng.uniform(0.05, 0.1) * h
    for wy in np.arange(y1 + step * 0.5, horizon - step * 0.5, step):
        for wx in np.arange(x1 + step * 0.4, x2 - step * 0.4, step):
            cv2.rectangle(canvas, (int(wx), int(wy)), (int(wx + step * 0.45), int(wy + step * 0.55)), win, -1)


def _poster(rng: np.random.Generator, canvas: np.ndarray, horizon: float, col: tuple) -> None:
    h, w = canvas.shape[:2]
    x1, y1 = rng.uniform(0, w), rng.uniform(0.1, 0.9) * horizon
    ww, hh = rng.uniform(0.04, 0.15) * w, rng.uniform(0.05, 0.25) * h
    cv2.rectangle(canvas, (int(x1), int(y1)), (int(x1 + ww), int(y1 + hh)), col, -1)
    col2 = tuple(float(v) for v in _vivid(rng))
    cv2.line(canvas, (int(x1), int(y1 + hh * 0.5)), (int(x1 + ww), int(y1 + hh * 0.5)), col2,
             max(1, int(hh * 0.15)))


def _blob(rng: np.random.Generator, canvas: np.ndarray, col: tuple) -> None:
    h, w = canvas.shape[:2]
    cv2.ellipse(
        canvas,
        (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
        (int(rng.uniform(0.02, 0.12) * w), int(rng.uniform(0.02, 0.1) * h)),
        rng.uniform(0, 180),
        0,
        360,
        col,
        -1,
    )


def _shapes(rng: np.random.Generator, canvas: np.ndarray, style: str, horizon: float) -> None:
    """Buildings with windows, trees (parks), posters / doors / signs and blobs, in place."""
    for _ in range(int(rng.integers(4, 12))):
        col = tuple(float(v) for v in (_vivid(rng) * 0.8 + 20))
        kind = rng.random()
        if style == "park" and kind < 0.6:
            _tree(rng, canvas, horizon)
        elif kind < 0.55:
            _building(rng, canvas, horizon, col)
        elif kind < 0.8:
            _poster(rng, canvas, horizon, col)
        else:
            _blob(rng, canvas, col)
    if style == "abstract":
        h, w = canvas.shape[:2]
        for _ in range(int(rng.integers(3, 8))):
            c = rng.uniform(0, 1, 2) * (w, h)
            pts = c + rng.normal(0, 0.15, (int(rng.integers(3, 6)), 2)) * (w, h)
            cv2.fillPoly(canvas, [pts.astype(np.int32)], tuple(float(v) for v in _vivid(rng)))


def make_background(
    rng: np.random.Generator,
    w: int,
    h: int,
    horizon: float,
    focal: float,
    cam_h: float,
    x0: float = 0.0,
    style: str | None = None,
) -> np.ndarray:
    """A textured, varied backdrop, ``(h, w, 3)`` uint8 RGB.

    ``horizon`` (pixels) and ``focal``, ``cam_h`` (camera height, m) define the ground plane the people
    stand on, so floor tiles and lines recede consistently with the people's perspective. ``x0`` is
    the image column of the optical centre.
    """
    style = style or str(rng.choice(BACKGROUND_STYLES, p=[0.3, 0.25, 0.2, 0.15, 0.1]))
    canvas = np.zeros((h, w, 3), np.float32)
    _sky(rng, canvas, style, horizon)
    _ground(rng, canvas, style, horizon, focal, cam_h, x0)
    _shapes(rng, canvas, style, horizon)
    # Texture everywhere: multi-scale noise and fine grain.
    n = _fbm(rng, w, h)
    canvas += (n * rng.uniform(15, 35))[..., None]
    canvas += rng.normal(0, 3.0, (h, w, 1)).astype(np.float32)
    tint = rng.uniform(0.85, 1.1, 3).astype(np.float32)
    canvas *= tint
    return np.clip(canvas, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Occluder objects: drawn into their own canvas (colour + coverage), then composited by depth.
# --------------------------------------------------------------------------------------------------
OBJECT_KINDS = ("pole", "bush", "car", "sign", "bin", "bench")
OBJECT_SIZES = {  # (width, height) in metres
    "pole": (0.15, 3.2),
    "bush": (1.4, 1.0),
    "car": (4.0, 1.45),
    "sign": (0.7, 2.2),
    "bin": (0.55, 0.95),
    "bench": (1.8, 0.85),
}


@dataclass
class ObjectSpec:
    """A static scene object standing on the ground; ``colours`` (3, 3) RGB; ``seed`` for its texture."""

    kind: str
    colours: np.ndarray
    seed: int

    @staticmethod
    def random(rng: np.random.Generator, kinds: tuple[str, ...] = OBJECT_KINDS) -> "ObjectSpec":
        return ObjectSpec(
            kind=str(rng.choice(kinds)),
            colours=np.stack([_vivid(rng) for _ in range(3)]),
            seed=int(rng.integers(2**31)),
        )


def draw_object(spec: ObjectSpec, scale: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Rasterise an object at ``scale`` px/m.

    Returns ``(rgb (h, w, 3) float32, alpha (h, w) float32 in [0, 1], anchor)`` where ``anchor`` is the
    canvas position (x, y, pixels) of the object's ground-contact centre.
    """
    rng = np.random.default_rng(spec.seed)
    ow, oh = OBJECT_SIZES[spec.kind]
    W, H = max(3, int(np.ceil(ow * scale)) + 4), max(3, int(np.ceil(oh * scale)) + 4)
    rgb = np.zeros((H, W, 3), np.float32)
    a = np.zeros((H, W), np.uint8)
    c0, c1, c2 = (tuple(float(x) for x in c) for c in spec.colours)
    s = scale
    bx, by = 2, H - 2  # bottom-left of the object's box

    def rect(x1, y1, x2, y2, col):
        p1 = (int(round(bx + x1 * s)), int(round(by - y2 * s)))
        p2 = (int(round(bx + x2 * s)), int(round(by - y1 * s)))
        cv2.rectangle(rgb, p1, p2, col, -1)
        cv2.rectangle(a, p1, p2, 255, -1)

    def circ(x, y, r, col):
        c = (int(round(bx + x * s)), int(round(by - y * s)))
        cv2.circle(rgb, c, max(1, int(round(r * s))), col, -1)
        cv2.circle(a, c, max(1, int(round(r * s))), 255, -1)

    k = spec.kind
    if k == "pole":
        grey = (rng.uniform(60, 140),) * 3
        rect(0.02, 0, 0.13, 3.2, grey)
        rect(0.0, 0, 0.15, 0.12, tuple(v * 0.7 for v in grey))
    elif k == "bush":
        green = (rng.uniform(20, 70), rng.uniform(80, 150), rng.uniform(20, 60))
        for _ in range(9):
            circ(
                rng.uniform(0.3, 1.1),
                rng.uniform(0.3, 0.6),
                rng.uniform(0.25, 0.4),
                tuple(g * rng.uniform(0.75, 1.2) for g in green),
            )
    elif k == "car":
        rect(0.0, 0.25, 4.0, 0.95, c0)
        rect(0.8, 0.9, 3.0, 1.45, c0)
        rect(1.0, 0.98, 1.85, 1.38, (60, 80, 100))
        rect(1.95, 0.98, 2.8, 1.38, (60, 80, 100))
        circ(0.85, 0.3, 0.3, (25, 25, 25))
        circ(3.15, 0.3, 0.3, (25, 25, 25))
    elif k == "sign":
        rect(0.3, 0, 0.4, 1.5, (120, 120, 120))
        rect(0.0, 1.5, 0.7, 2.2, c1)
        rect(0.08, 1.7, 0.62, 1.85, c2)
    elif k == "bin":
        rect(0.0, 0, 0.55, 0.9, c0)
        rect(-0.02, 0.85, 0.57, 0.95, c1)
    elif k == "bench":
        rect(0.0, 0.4, 1.8, 0.5, c0)
        rect(0.0, 0.6, 1.8, 0.85, c0)
        rect(0.1, 0, 0.2, 0.45, (50, 50, 50))
        rect(1.6, 0, 1.7, 0.45, (50, 50, 50))
    alpha = a.astype(np.float32) / 255.0
    n = cv2.resize(
        rng.uniform(-1, 1, (max(2, H // 6), max(2, W // 6))).astype(np.float32),
        (W, H),
        interpolation=cv2.INTER_LINEAR,
    )
    rgb += (n * 18.0)[..., None] + rng.normal(0, 4, (H, W, 1)).astype(np.float32)
    return np.clip(rgb, 0, 255), alpha, (bx + ow * s / 2.0, float(by))
