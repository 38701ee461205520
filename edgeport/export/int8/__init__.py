"""int8 that keeps its accuracy: everything the export does beyond converting a calibrated scheme.

    budget      what an int8 artifact may lose against the Keras model (--max-drop, --min-agreement, ...)
    ranges      activation-range rules from calibration histograms (--calibration-method)
    graph       the op graph a quantizer sees and the units a search keeps float
    candidates  int8 models with any set of ops kept float, from one calibration (TFLite, ONNX)
    search      the cheapest candidate that meets the budget on the selection images
    report      EXPORT/quantization/<scheme>.json/.md/.png: per-layer SQNR, ranking, trace
    improve     the above for one searchable scheme, as the exporter calls it

Which schemes take part is the scheme table's word
(:attr:`edgeport.schemes.SchemeSpec.searchable`, ``range_rules``), never a name
check. Importing this package imports nothing heavy; the modules that need
TensorFlow or onnxruntime import them on first use.
"""
