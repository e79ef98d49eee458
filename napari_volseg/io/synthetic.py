"""Synthetic MSD-format tasks: a spleen-like CT phantom and a left-atrium-like MRI phantom.

Each case is drawn deterministically from ``(seed, case index)``: same seed, same voxels. The
phantoms are built in canonical ``(z, y, x)`` LPS+ coordinates in mm and written in RAS+ voxel
order (as many scanners' NIfTI converters do), so every load exercises the reorientation.
They are the embedded default of ``volseg demo`` and of the napari sample data, so the whole
workflow runs with no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_volseg import paths
from napari_volseg.errors import VolsegError
from napari_volseg.io import volumes
from napari_volseg.io.decathlon import load_task, write_dataset_json
from napari_volseg.io.geometry import Geometry, geometry_from_affine
from napari_volseg.outputs import check_writable

KINDS = ("ct", "mri")


@dataclass(frozen=True)
class PhantomSpec:
    """Grid of one phantom kind: shape and spacing are ``(z, y, x)``, in voxels and mm."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]


DEFAULT_SPECS = {
    "ct": PhantomSpec(shape=(32, 128, 128), spacing=(5.0, 0.8, 0.8)),
    "mri": PhantomSpec(shape=(48, 96, 96), spacing=(1.37, 1.25, 1.25)),
}
TASK_META = {
    "ct": {
        "name": "SyntheticSpleen",
        "description": "Synthetic spleen-like CT phantom (napari-volseg)",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "spleen"},
    },
    "mri": {
        "name": "SyntheticLeftAtrium",
        "description": "Synthetic left-atrium-like MRI phantom (napari-volseg)",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "left atrium"},
    },
}


def _grid_mm(spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel centre coordinates in mm, centred on the volume, each broadcastable to ``spec.shape``."""
    return tuple(
        ((np.arange(n) - (n - 1) / 2.0) * s).reshape([-1 if a == i else 1 for a in range(3)])
        for i, (n, s) in enumerate(zip(spec.shape, spec.spacing, strict=True))
    )


def _smooth_noise(rng: np.random.Generator, spec: PhantomSpec, sigma_mm: float) -> np.ndarray:
    """Gaussian random field with correlation length ``sigma_mm``, unit standard deviation."""
    field = ndimage.gaussian_filter(
        rng.standard_normal(spec.shape).astype(np.float32), [sigma_mm / s for s in spec.spacing], mode="wrap"
    )
    return field / (field.std() + 1e-8)


def _random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    c, s = np.cos(angles), np.sin(angles)
    rz = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
    ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    rx = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
    return rz @ ry @ rx


def _blob(grid, centre, radii, rotation=None, wobble: np.ndarray | float = 0.0) -> np.ndarray:
    """Boolean ellipsoid (centre, radii in mm, ``(z, y, x)``), its surface displaced by ``wobble``."""
    d = [g - c for g, c in zip(grid, centre, strict=True)]
    if rotation is not None:
        d = [sum(rotation[i, j] * d[j] for j in range(3)) for i in range(3)]
    r2 = sum((di / ri) ** 2 for di, ri in zip(d, radii, strict=True))
    return np.sqrt(r2) - 1.0 + wobble < 0


def ct_case(seed: int, spec: PhantomSpec | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One CT phantom: image in Hounsfield units (int16) and spleen mask (uint8), ``(z, y, x)`` LPS+.

    Body outline with fat and muscle layers, spine, liver, kidneys, bowel gas and a spleen whose
    smooth random shape, position and size vary by seed; texture and scanner noise on top.
    """
    spec = spec or DEFAULT_SPECS["ct"]
    rng = np.random.default_rng(seed)
    z, y, x = _grid_mm(spec)
    depth, height, width = (n * s for n, s in zip(spec.shape, spec.spacing, strict=True))
    ones = np.ones(spec.shape, dtype=bool)
    body_a = 0.46 * width * (1 + 0.05 * rng.standard_normal())
    body_b = 0.36 * height * (1 + 0.05 * rng.standard_normal())
    body_r = np.sqrt((x / body_a) ** 2 + (y / body_b) ** 2) * ones
    hu = np.full(spec.shape, -1000.0, dtype=np.float32)
    hu[body_r < 1.0] = -100.0  # subcutaneous fat
    hu[body_r < 0.93] = 50.0  # muscle wall
    hu[body_r < 0.86] = 35.0  # soft tissue
    inner = body_r < 0.86

    spine = (np.sqrt((x / (0.09 * width)) ** 2 + ((y - 0.62 * body_b) / (0.09 * width)) ** 2) < 1.0) * ones
    hu[spine] = 350.0
    hu[spine & ~ndimage.binary_erosion(spine, iterations=2)] = 900.0
    liver = (
        _blob(
            (z, y, x),
            (depth * 0.1, -0.05 * body_b, -0.45 * body_a),
            (depth * 0.45, 0.5 * body_b, 0.42 * body_a),
            _random_rotation(rng, 10),
            0.15 * _smooth_noise(rng, spec, 12.0),
        )
        & inner
    )
    hu[liver] = 95.0
    for side in (-1, 1):
        kidney = (
            _blob(
                (z, y, x),
                (-depth * 0.15, 0.45 * body_b, side * 0.3 * body_a),
                (depth * 0.2, 0.14 * height, 0.09 * width),
                _random_rotation(rng, 15),
            )
            & inner
        )
        hu[kidney] = 150.0
    for _ in range(rng.integers(2, 5)):
        gas = (
            _blob(
                (z, y, x),
                (rng.uniform(-0.3, 0.3) * depth, -0.45 * body_b, rng.uniform(-0.3, 0.2) * body_a),
                (rng.uniform(8, 20), rng.uniform(3, 7), rng.uniform(3, 7)),
            )
            & inner
        )
        hu[gas] = -800.0

    centre = (
        rng.uniform(-0.1, 0.15) * depth,
        rng.uniform(0.05, 0.25) * body_b,
        rng.uniform(0.45, 0.6) * body_a,
    )
    radii = (
        rng.uniform(0.18, 0.28) * depth,
        rng.uniform(0.15, 0.22) * height,
        rng.uniform(0.09, 0.13) * width,
    )
    spleen = _blob((z, y, x), centre, radii, _random_rotation(rng, 20), 0.3 * _smooth_noise(rng, spec, 10.0))
    spleen &= inner & ~spine
    spleen = ndimage.binary_opening(spleen, iterations=1)
    hu[spleen] = 120.0

    hu += 6.0 * _smooth_noise(rng, spec, 3.0) * (hu > -500)  # organ texture
    hu += rng.normal(0.0, 12.0, size=spec.shape).astype(np.float32)  # scanner noise
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), spleen.astype(np.uint8)


def mri_case(seed: int, spec: PhantomSpec | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One MRI phantom: uint16 intensities and a left-atrium mask (uint8), ``(z, y, x)`` LPS+.

    Bright blood pools (left atrium with pulmonary-vein stubs, left ventricle, aorta), darker
    myocardium and chest wall, dark lungs, a smooth bias field and Rician noise.
    """
    spec = spec or DEFAULT_SPECS["mri"]
    rng = np.random.default_rng(seed)
    z, y, x = _grid_mm(spec)
    depth, height, width = (n * s for n, s in zip(spec.shape, spec.spacing, strict=True))
    ones = np.ones(spec.shape, dtype=bool)
    sig = np.full(spec.shape, 15.0, dtype=np.float32)
    chest = (np.sqrt((x / (0.47 * width)) ** 2 + (y / (0.4 * height)) ** 2) < 1.0) * ones
    sig[chest] = 300.0
    for side in (-1, 1):
        lung = _blob((z, y, x), (0, 0.05 * height, side * 0.25 * width), (0.6 * depth, 0.3 * height, 0.17 * width))
        sig[lung & chest] = 40.0
    heart = _blob((z, y, x), (0, -0.05 * height, 0.02 * width), (0.35 * depth, 0.24 * height, 0.2 * width))
    sig[heart] = 250.0
    lv = _blob(
        (z, y, x),
        (-0.05 * depth, -0.12 * height, 0.08 * width),
        (0.2 * depth, 0.11 * height, 0.09 * width),
        _random_rotation(rng, 15),
    )
    sig[lv] = 700.0
    aorta = (np.sqrt(((x + 0.06 * width) / 6.0) ** 2 + ((y - 0.02 * height) / 6.0) ** 2) < 1.0) * (z > 0) * ones
    sig[aorta] = 650.0

    centre = (
        rng.uniform(0.0, 0.12) * depth,
        rng.uniform(0.08, 0.14) * height,
        rng.uniform(-0.04, 0.06) * width,
    )
    radii = (
        rng.uniform(0.14, 0.2) * depth,
        rng.uniform(0.09, 0.13) * height,
        rng.uniform(0.12, 0.17) * width,
    )
    la = _blob((z, y, x), centre, radii, _random_rotation(rng, 20), 0.25 * _smooth_noise(rng, spec, 8.0))
    for _ in range(rng.integers(2, 5)):  # pulmonary vein stubs running posterolaterally
        side = rng.choice([-1, 1])
        dz, end_y, end_x = (
            rng.uniform(-0.5, 0.5) * radii[0],
            centre[1] + 1.6 * radii[1],
            centre[2] + side * 1.5 * radii[2],
        )
        t = np.linspace(0.0, 1.0, 24)
        vein = np.zeros(spec.shape, dtype=bool)
        for ti in t:
            vein |= _blob(
                (z, y, x),
                (centre[0] + dz, centre[1] + ti * (end_y - centre[1]), centre[2] + ti * (end_x - centre[2])),
                (3.5, 3.5, 3.5),
            )
        la |= vein
    la &= chest
    sig[la] = 680.0

    sig += 25.0 * _smooth_noise(rng, spec, 4.0) * chest
    bias = 1.0 + 0.2 * _smooth_noise(rng, spec, 60.0)
    sig *= np.clip(bias, 0.6, 1.4)
    noise = 20.0
    sig = np.sqrt((sig + rng.normal(0, noise, spec.shape)) ** 2 + rng.normal(0, noise, spec.shape) ** 2)
    return np.clip(np.round(sig), 0, 65535).astype(np.uint16), la.astype(np.uint8)


def _ras_geometry(spec: PhantomSpec, seed: int) -> Geometry:
    """RAS+ voxel order with a scanner-like origin; the file's axes are reversed and flipped vs canonical."""
    sz, sy, sx = spec.spacing
    nz, ny, nx = spec.shape
    origin = np.array([-(nx - 1) * sx / 2, -(ny - 1) * sy / 2, -(nz - 1) * sz / 2 + 10.0 * (seed % 7)])
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = origin
    return geometry_from_affine(affine, (nx, ny, nz))


def write_task(
    out: str | os.PathLike,
    cases: int = 8,
    kind: str = "ct",
    seed: int = 0,
    spec: PhantomSpec | None = None,
    test_cases: int = 0,
) -> Path:
    """Write an MSD-layout task folder of synthetic cases to ``out``; returns the folder.

    Case ``i`` is drawn from seed ``seed * 1000 + i``, so the first cases do not change when
    more are asked for. Existing files of the same names are overwritten.
    """
    if kind not in KINDS:
        raise VolsegError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if cases < 1 or test_cases < 0 or seed < 0:
        raise VolsegError(
            f"need at least 1 case, 0 or more test cases and a seed >= 0 (got {cases}, {test_cases}, {seed})"
        )
    check_writable(out, folder=True, what="task folder")
    spec = spec or DEFAULT_SPECS[kind]
    make = ct_case if kind == "ct" else mri_case
    prefix = "spleen" if kind == "ct" else "la"
    root = Path(out)
    for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if test_cases else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    training, test = [], []
    for i in range(cases + test_cases):
        case_seed = seed * 1000 + i
        image, label = make(case_seed, spec)
        geometry = _ras_geometry(spec, case_seed)
        name = f"{prefix}_{i + 1:03d}.nii.gz"
        if i < cases:
            volumes.write_image(root / "imagesTr" / name, image, geometry)
            volumes.write_labels(root / "labelsTr" / name, label, geometry)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            volumes.write_image(root / "imagesTs" / name, image, geometry)
            test.append(f"./imagesTs/{name}")
    meta = dict(TASK_META[kind])
    meta.update(
        {
            "tensorImageSize": "3D",
            "licence": "CC0 (synthetic)",
            "reference": "napari-volseg",
            "seed": seed,
            "numTraining": cases,
            "numTest": test_cases,
            "training": training,
            "test": test,
        }
    )
    write_dataset_json(root, meta)
    return root


def synthetic_task_dir(kind: str = "ct", cases: int = 8) -> Path:
    """The cached synthetic task folder (written once per user; ``VOLSEG_CACHE`` moves it)."""
    folder = paths.samples_dir() / f"synthetic-{kind}-{cases}"
    try:
        task = load_task(folder)
        if len(task.cases) == cases:
            return folder
    except Exception:
        pass
    return write_task(folder, cases=cases, kind=kind)
