#!/usr/bin/env python3
"""Python onnxruntime on the same ONNX, same thread count and same measurement as
`edge-runtime bench`: median time per call over RUNS calls at batch 1 and 64.

usage: bench-python-ort.py MODEL.onnx [THREADS] [RUNS]     (pip install onnxruntime numpy)"""
import sys, time
import numpy as np
import onnxruntime as ort

model = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 200
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
meta = s.get_modelmeta().custom_metadata_map
latent, classes = int(meta["latent_dim"]), int(meta["num_classes"])
print("| batch | runs | median ms per call | ms per image | images/s |")
print("|---|---|---|---|---|")
rng = np.random.default_rng(1)
for batch in (1, 64):
    feeds = {"z": rng.standard_normal((batch, latent), dtype=np.float32)}
    if classes:
        feeds["label"] = (np.arange(batch) % classes).astype(np.int64)
    for _ in range(10):
        s.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feeds)
        times.append(time.perf_counter() - t)
    m = sorted(times)[len(times) // 2]
    print(f"| {batch} | {runs} | {m * 1e3:.3f} | {m * 1e3 / batch:.4f} | {batch / m:.0f} |")
