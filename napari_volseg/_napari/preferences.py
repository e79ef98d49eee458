"""napari's reader preference for volume files and MSD task folders, claimed once when the plugin activates.

napari's builtin reader also lists ``*.nii`` / ``*.nii.gz`` (through imageio, which cannot read them) and accepts every
folder, so with two readers napari asks which one to use on every drop. npe2 has no reader priority; what napari
offers is the user setting ``plugins.extension2reader`` (fnmatch patterns -> plugin), which it consults before asking.
When napari activates napari-volseg (its first widget, sample, or read) we add our patterns there, once per napari
settings file: a user who later removes or changes them in Preferences > Plugins keeps that choice (a marker records
that we claimed them). napari keeps its settings per environment, so the marker is kept per settings file too: a
second environment (or another ``NAPARI_CONFIG``) gets the claim as well.
"""

from __future__ import annotations

from napari_volseg import paths

PLUGIN = "napari-volseg"
READER_PATTERNS = (
    "*.nii",
    "*.nii.gz",
    "*.nrrd",
    "*.nhdr",
    "*.mha",
    "*.mhd",
    "*.dcm",
    "*.dicom",
    "*.ima",
    "*.IMA",
    "*/Task[0-9][0-9]*_*/",
    "*?/",
)
"""Volume files (NIfTI, NRRD, MetaImage, DICOM), MSD-style task folders (``.../Task02_Heart/``, the form napari
matches folders in) and every other folder (``*?/``: napari ranks a ``?`` as less specific than a
``*`` alone, so a folder pattern the user set, such as ``*.zarr/``, wins over it). Every folder, because the folders our users drop have any name (a DICOM series ``SE0003/``, a
parent of ``images/`` and ``labels/``); the reader hands a folder it does not read to napari's own reader."""


def settings_file() -> str:
    """The napari settings file in use (one per environment), or "" when napari keeps its settings in memory."""
    from napari.settings import get_settings

    return str(get_settings().config_path or "")


def marker_path():
    """Where the claim for this napari settings file is recorded."""
    import hashlib

    key = hashlib.sha1(settings_file().encode()).hexdigest()[:12]
    return paths.cache_root() / f"napari-reader-preference-claimed-{key}"


def _claimed_before(marker) -> set[str]:
    """The patterns the marker says were claimed (its one line: ``...preference for: *.nii, *.nii.gz, ...``)."""
    try:
        text = marker.read_text()
    except OSError:
        return set()
    return {p.strip() for p in text.partition(": ")[2].split(",") if p.strip()}


def claim_reader_preference() -> dict[str, str]:
    """Make napari-volseg napari's reader for :data:`READER_PATTERNS` unless the user chose otherwise.

    Each pattern is claimed once (a pattern a newer version adds is claimed then too; one the user removed stays
    removed). Returns the patterns set now (empty when nothing changed).
    """
    from napari.settings import get_settings

    marker = marker_path()
    legacy = paths.cache_root() / "napari-reader-preference-claimed"  # one marker per user, before 2026-12-06
    if legacy.is_file() and not marker.exists():  # the environment that claimed it first keeps its user's choices
        try:
            legacy.replace(marker)
        except OSError:
            pass
    before = _claimed_before(marker)
    new = [p for p in READER_PATTERNS if p not in before]
    if not new:
        return {}
    plugins = get_settings().plugins
    current = dict(plugins.extension2reader)
    added = {p: PLUGIN for p in new if p not in current}
    if added:
        plugins.extension2reader = {**current, **added}
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        claimed = sorted(before | set(READER_PATTERNS))
        marker.write_text("napari-volseg set napari's reader preference for: " + ", ".join(claimed) + "\n")
    except OSError:  # a read-only cache: claiming again next time changes nothing the user set
        pass
    return added


def activate(context=None) -> None:
    """npe2 ``on_activate``: called by napari the first time one of the plugin's contributions is used."""
    claim_reader_preference()
