"""Splits a digit generator's FID (in the judge's features, as `train eval` computes it) into its
mean and covariance terms, per class too, and compares each class's feature variance with the
real digits'. A diagnostic for the quality work; needs numpy, torch and onnxruntime.

usage: python scripts/fid-parts.py GENERATOR.onnx MNIST_DIR [JUDGE.safetensors]"""
import gzip, json, struct, sys
import numpy as np, onnxruntime as ort, torch, torch.nn.functional as F


def safetensors(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header, base = json.loads(raw[8:8 + n]), 8 + n
    return {k: torch.from_numpy(np.frombuffer(raw[base + v['data_offsets'][0]:base + v['data_offsets'][1]],
                                              dtype=np.float32).reshape(v['shape']).copy())
            for k, v in header.items() if k != '__metadata__'}


def idx(path):
    data = gzip.open(path).read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def features(judge, x):
    """The judge's 128 penultimate features (train/src/judge.rs, inference mode)."""
    h = F.leaky_relu(F.conv2d(x, judge['features.0.weight'], judge['features.0.bias'], 2, 1), 0.2)
    h = F.conv2d(h, judge['features.2.weight'], None, 2, 1)
    h = F.batch_norm(h, judge['features.3.running_mean'], judge['features.3.running_var'],
                     judge['features.3.weight'], judge['features.3.bias'], False, 0, 1e-5)
    h = F.leaky_relu(h, 0.2).flatten(1)
    return F.relu(h @ judge['features.6.weight'].T + judge['features.6.bias']).double().numpy()


def fid_terms(a, b):
    """(‖μa − μb‖², tr(Σa + Σb − 2(ΣaΣb)^½))."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ cb @ root), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum()), float(np.trace(ca) + np.trace(cb) - 2 * cross)


def main():
    model, mnist = sys.argv[1], sys.argv[2]
    judge = safetensors(sys.argv[3] if len(sys.argv) > 3 else 'models/pretrained/mnist-judge.safetensors')
    x = torch.tensor(idx(f'{mnist}/t10k-images-idx3-ubyte.gz'), dtype=torch.float32)[:, None] / 127.5 - 1
    y = idx(f'{mnist}/t10k-labels-idx1-ubyte.gz').astype(np.int64)
    with torch.no_grad():
        real = features(judge, x)
    session, rng = ort.InferenceSession(model), np.random.default_rng(0)
    for name, labels in [('1,000 of each digit', np.arange(10000) % 10), ("the test set's digits", y)]:
        z = rng.standard_normal((len(labels), 100)).astype(np.float32)
        images = np.concatenate([session.run(None, {'z': z[i:i + 500], 'label': labels[i:i + 500]})[0]
                                 for i in range(0, len(labels), 500)])
        with torch.no_grad():
            fake = features(judge, torch.tensor(images))
        mean, cov = fid_terms(fake, real)
        print(f'{name}: FID {mean + cov:.2f} = mean term {mean:.2f} + covariance term {cov:.2f}')
    spread = [np.trace(np.cov(fake[labels == k], rowvar=False)) / np.trace(np.cov(real[y == k], rowvar=False))
              for k in range(10)]
    print('per-digit feature variance, generated / real:', ' '.join(f'{s:.2f}' for s in spread))


if __name__ == '__main__':
    main()
