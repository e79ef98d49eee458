"""The model zoo: pretrained models (shipped or pulled with SHA-256), export to the formats the field shares
(ONNX, TorchScript, bioimage.io, MONAI bundle) and import of MONAI bundles. No Qt here."""
