"""edgeport: train an image classifier, export it for devices, run it, benchmark it.

One function per stage (each takes its stage's config, or the same options as
keyword arguments, and returns an object)::

    from edgeport.build import train           # -> RunResult: run_dir, metrics, history
    from edgeport.export import export         # -> ExportResult: out_dir, artifacts, manifest, ok
    from edgeport.benchmarks import bench      # -> BenchReport: rows, row(scheme), table(), files
    from edgeport.runtime import Classifier    # the device runtime: Classifier.open(export_dir).classify(...)

    run = train(data="photos/", out="runs/r1")
    exp = export(run.run_dir)
    report = bench(exp.out_dir, data="photos/")

``edgeport.build`` and ``edgeport.export`` need the ``[train]`` extra
(TensorFlow); ``edgeport.runtime`` and ``edgeport.benchmarks`` need numpy,
OpenCV and one engine, never TensorFlow. Importing ``edgeport`` imports none of them.
"""

__version__ = "0.1.0"
