"""napari faces of napari-volseg: reader, writer, sample data, widgets. The only place Qt may appear."""
