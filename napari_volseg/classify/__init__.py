"""The seed report's other system: a 3D volume classifier (VGG-13 with 3D convolutions) on 3D digits.

``digits3d`` makes the data set, ``mnist3d`` reads the public 3D MNIST file, ``config`` holds the training
presets, ``train`` the loop (typed events), ``predict`` the inference, ``checkpoint`` the safetensors files.
"""
