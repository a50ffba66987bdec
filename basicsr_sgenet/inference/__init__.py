"""Running a trained network on image files: weights loading, image IO, tiling and the
device/precision set-up that ``basicsr_sgenet.deblur`` (the CLI) puts together."""
