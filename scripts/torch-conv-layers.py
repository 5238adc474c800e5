"""PyTorch's side of `cargo run --release -p gan-models --example conv_layers`: the same layers at
batch 64, forward and backward (input and weight gradients, together and apart) with
torch.nn.functional, in the same table, so that the two can be put side by side from one sitting.
usage: python scripts/torch-conv-layers.py [THREADS] [FILTER]"""
import sys, time
import torch
import torch.nn.functional as F

# (name, transposed, cin, cout, input side, stride, padding), as in models/examples/conv_layers.rs
LAYERS = [
    ("mnist G convT 128-64 7->14", True, 128, 64, 7, 2, 1),
    ("mnist G convT 64-1 14->28", True, 64, 1, 14, 2, 1),
    ("mnist D conv 11-64 28->14", False, 11, 64, 28, 2, 1),
    ("mnist D conv 64-128 14->7", False, 64, 128, 14, 2, 1),
    ("faces G convT 100-512 1->4", True, 100, 512, 1, 1, 0),
    ("faces G convT 512-256 4->8", True, 512, 256, 4, 2, 1),
    ("faces G convT 256-128 8->16", True, 256, 128, 8, 2, 1),
    ("faces G convT 128-64 16->32", True, 128, 64, 16, 2, 1),
    ("faces G convT 64-3 32->64", True, 64, 3, 32, 2, 1),
    ("faces D conv 3-64 64->32", False, 3, 64, 64, 2, 1),
    ("faces D conv 64-128 32->16", False, 64, 128, 32, 2, 1),
    ("faces D conv 128-256 16->8", False, 128, 256, 16, 2, 1),
    ("faces D conv 256-512 8->4", False, 256, 512, 8, 2, 1),
    ("faces D conv 512-1 4->1", False, 512, 1, 4, 1, 0),
    ("half G convT 100-256 1->4", True, 100, 256, 1, 1, 0),
    ("half G convT 256-128 4->8", True, 256, 128, 4, 2, 1),
    ("half G convT 128-64 8->16", True, 128, 64, 8, 2, 1),
    ("half G convT 64-32 16->32", True, 64, 32, 16, 2, 1),
    ("half G convT 32-3 32->64", True, 32, 3, 32, 2, 1),
    ("half D conv 3-32 64->32", False, 3, 32, 64, 2, 1),
    ("half D conv 32-64 32->16", False, 32, 64, 32, 2, 1),
    ("half D conv 64-128 16->8", False, 64, 128, 16, 2, 1),
    ("half D conv 128-256 8->4", False, 128, 256, 8, 2, 1),
    ("half D conv 257-1 4->1", False, 257, 1, 4, 1, 0),
]


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    keep = sys.argv[2] if len(sys.argv) > 2 else ""
    n = 64
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| layer | fwd ms | bwd ms | dx ms | dW ms | fwd GFLOP/s | bwd GFLOP/s | dx GFLOP/s | dW GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t, cin, cout, side, s, p in LAYERS:
        if keep not in name:
            continue
        x0 = torch.randn(n, cin, side, side)
        w0 = torch.randn(*((cin, cout, 4, 4) if t else (cout, cin, 4, 4))) * 0.02

        def conv(x, w):
            return F.conv_transpose2d(x, w, stride=s, padding=p) if t else F.conv2d(x, w, stride=s, padding=p)

        def layer(x_grad, w_grad):
            """One pass whose backward computes the gradients of x, w or both (fresh leaves)."""
            return lambda: conv(x0.detach().requires_grad_(x_grad), w0.detach().requires_grad_(w_grad))

        # As in conv_layers: what `sum`'s own backward costs, timed on a leaf of the output's
        # shape, comes off the backward times; dx and dW are also timed alone.
        y = conv(x0, w0)
        seed = timed(lambda: y.detach().requires_grad_())[1]
        f, b = timed(layer(True, True))
        dx, dw = timed(layer(True, False))[1], timed(layer(False, True))[1]
        b, dx, dw = b - seed, dx - seed, dw - seed
        # MACs: a conv's output element costs cin·k·k; a transposed conv's input element cout·k·k.
        macs = n * cin * side * side * cout * 16 if t else y.numel() * cin * 16
        print(
            f"| {name} | {f * 1e3:.3f} | {b * 1e3:.3f} | {dx * 1e3:.3f} | {dw * 1e3:.3f} "
            f"| {2 * macs / f / 1e9:.0f} | {4 * macs / b / 1e9:.0f} "
            f"| {2 * macs / dx / 1e9:.0f} | {2 * macs / dw / 1e9:.0f} |"
        )


def timed(forward):
    """Medians of `forward()`'s time and of its sum's backward over 20 runs after 5 warm-up runs."""
    fwd, bwd = [], []
    for i in range(25):
        t0 = time.perf_counter()
        y = forward()
        t1 = time.perf_counter()
        y.sum().backward()
        t2 = time.perf_counter()
        if i >= 5:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    return sorted(fwd)[len(fwd) // 2], sorted(bwd)[len(bwd) // 2]


if __name__ == "__main__":
    main()
