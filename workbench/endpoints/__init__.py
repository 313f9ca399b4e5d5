"""Models served from a slice: ONNX export with a parity check, a KServe v2 server per endpoint, a load bench."""
