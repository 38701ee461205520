"""edgeport: train an image classifier, export it for devices, run it, benchmark it.

Stages (one subpackage each): ``edgeport.build`` (Keras training, needs the
``[train]`` extra), ``edgeport.export`` (TFLite/ONNX conversion, ``[train]``),
``edgeport.runtime`` and ``edgeport.benchmarks`` (numpy + OpenCV + one engine;
never TensorFlow).
"""

__version__ = "0.1.0"
