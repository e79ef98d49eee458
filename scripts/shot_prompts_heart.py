"""The Prompts tab correcting a held-out heart at laptop size: the shipped msd-heart's prediction as the annotation,
then corrective clicks with msd-heart-interactive placed on napari's prompt layers where the simulated annotator
puts them (the centre of the largest error), a screenshot after each step. Run under Xvfb with a screen that size:

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python scripts/shot_prompts_heart.py --size 1366x768
"""

from __future__ import annotations

import argparse

import napari
import numpy as np
from screenshots import HEART, shot, wait_for

from napari_volseg.interactive import simulate as sim
from napari_volseg.io import volumes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1366x768")
    parser.add_argument("--case", default="la_018")
    parser.add_argument("--clicks", type=int, default=3)
    args = parser.parse_args()
    if not (HEART / "dataset.json").is_file():
        raise SystemExit(f"no heart task at {HEART}")
    width, height = (int(v) for v in args.size.split("x"))
    from napari_volseg._napari.widgets import VolsegDock
    from napari_volseg.engine.infer import Predictor
    from napari_volseg.zoo.registry import resolve

    scan = HEART / "imagesTr" / f"{args.case}.nii.gz"
    truth = volumes.read(HEART / "labelsTr" / f"{args.case}.nii.gz", label=True).data > 0
    image = volumes.read(scan)
    predictor = Predictor(resolve("msd-heart"))
    start = predictor.predict(image).labels.astype(np.uint8)
    predictor.release()
    viewer = napari.Viewer(show=True, title="napari-volseg")
    viewer.window.set_geometry(0, 0, width, height)
    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg", area="right")
    layer = viewer.add_image(image.data, name=args.case, scale=image.spacing, colormap="gray")
    viewer.add_labels(start, name=f"{args.case} annotation", scale=image.spacing, opacity=0.5)
    viewer.layers.selection.active = layer
    prompts = dock.widgets["Prompts"]
    dock.show_tab("Prompts")
    prompts.refresh_images()
    prompts.image.setCurrentText(args.case)
    prompts.model.setCurrentText("msd-heart-interactive")
    mask = start > 0
    print(f"start (msd-heart): Dice {sim.dice(mask, truth):.3f}")
    click = sim.next_click(mask, truth, image.spacing)
    viewer.dims.set_point(0, click.zyx[0] * image.spacing[0])
    shot(viewer, f"prompts-heart-0-{args.size}")
    for k in range(1, args.clicks + 1):
        prompts.tool("positive" if click.positive else "negative")
        viewer.layers["prompts +" if click.positive else "prompts −"].add(list(click.zyx))
        wait_for(lambda: prompts.worker is None and not prompts.queue, 120)
        mask = np.asarray(viewer.layers[f"{args.case} annotation"].data) > 0
        print(f"after {k} click(s): Dice {sim.dice(mask, truth):.3f}; {prompts.status.text()}")
        viewer.dims.set_point(0, click.zyx[0] * image.spacing[0])
        shot(viewer, f"prompts-heart-{k}-{args.size}")
        click = sim.next_click(mask, truth, image.spacing)
        if click is None:
            break
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
