"""Installing what the plugin needs into the user's QGIS: ONNX Runtime and friends into QGIS's own
Python (:mod:`.deps`), and models by download with a SHA-256 check (:mod:`.model_install`)."""
