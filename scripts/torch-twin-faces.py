"""PyTorch twin of the project's 64x64 faces GAN and its shipped recipe, for training-speed
comparisons in one sitting (scripts/bench-faces-twin alternates it with `train`).

Same layers and sizes as `train --dataset folder --arch dcgan64` with the given options:
  G: z(100) -> ConvT(100, 8ngf, 4, 1, 0) -> 4 x [BN ReLU, then x2: ConvT(4, 2, 1) or, with
     --upsample, nearest x2 + Conv 3x3 pad 1] halving the width down to ngf, the last to 3
     channels (a bias on the upsampling G's last conv) -> tanh
  D: Conv(3, ndf, 4, 2, 1) LReLU -> 3 x [Conv 4 s2 p1, BN, LReLU] doubling the width
     -> minibatch stddev channel -> Conv(8ndf + 1, 1, 4, 1, 0)
Recipe: hinge loss, DiffAugment (colour, translation 1/8, cut-out 1/2) on every image D sees,
Adam 2e-4 (0.5, 0.999), batch 64, EMA of G with decay min(0.999, (1+t)/(10+t)) every step; G's
step through D with D's weights frozen. Prints training images/s of each epoch (steps only).

usage: python torch-twin-faces.py DATA EPOCHS THREADS [--upsample] [--ngf N] [--ndf N] [--limit N]
"""
import argparse, glob, time, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image


def generator(ngf, upsample):
    def double(cin, cout, bias):
        if upsample:
            return [nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)]
        return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)]
    layers = [nn.ConvTranspose2d(100, ngf * 8, 4, 1, 0, bias=False)]
    for cin, cout in [(8, 4), (4, 2), (2, 1)]:
        layers += [nn.BatchNorm2d(ngf * cin), nn.ReLU(True)] + double(ngf * cin, ngf * cout, False)
    layers += [nn.BatchNorm2d(ngf), nn.ReLU(True)] + double(ngf, 3, upsample) + [nn.Tanh()]
    return nn.Sequential(*layers)


class MinibatchStddev(nn.Module):
    def forward(self, x):
        std = (x.var(0, unbiased=False) + 1e-8).sqrt().mean()
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], 1)


def discriminator(ndf):
    layers = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for cin, cout in [(1, 2), (2, 4), (4, 8)]:
        layers += [nn.Conv2d(ndf * cin, ndf * cout, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * cout),
                   nn.LeakyReLU(0.2, True)]
    layers += [MinibatchStddev(), nn.Conv2d(ndf * 8 + 1, 1, 4, 1, 0, bias=False), nn.Flatten()]
    return nn.Sequential(*layers)


def diff_augment(x):
    n, c, h, w = x.shape
    r = lambda: torch.rand(n, 1, 1, 1)
    x = x + (r() - 0.5)
    gray = x.mean(1, keepdim=True)
    x = (x - gray) * (r() * 2) + gray
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (r() + 0.5) + mean
    # translation by up to 1/8 of a side, zeros shifted in; a zeroed square of half a side
    sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    dy, dx = torch.randint(-sh, sh + 1, (n, 1, 1)), torch.randint(-sw, sw + 1, (n, 1, 1))
    gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    sy, sx = gy[None] - dy, gx[None] - dx
    inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1)) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1)) - cw // 2
    cut = (gy[None] >= top) & (gy[None] < top + ch) & (gx[None] >= left) & (gx[None] < left + cw)
    index = (torch.arange(n)[:, None, None] * h + sy.clamp(0, h - 1)) * w + sx.clamp(0, w - 1)
    flat = x.permute(1, 0, 2, 3).reshape(c, n * h * w)
    moved = flat[:, index.reshape(-1)].reshape(c, n, h, w).permute(1, 0, 2, 3)
    return moved * (inside & ~cut)[:, None].to(x.dtype)


def init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)): nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d): nn.init.normal_(m.weight, 1.0, 0.02); nn.init.zeros_(m.bias)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('data'); p.add_argument('epochs', type=int); p.add_argument('threads', type=int)
    p.add_argument('--upsample', action='store_true'); p.add_argument('--ngf', type=int, default=32)
    p.add_argument('--ndf', type=int, default=32); p.add_argument('--limit', type=int)
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    files = sorted(glob.glob(f'{a.data}/*.png'))[:a.limit]
    x = torch.tensor(np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files]))
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
    G, D = generator(a.ngf, a.upsample), discriminator(a.ndf)
    G.apply(init); D.apply(init)
    G_ema = generator(a.ngf, a.upsample); G_ema.load_state_dict(G.state_dict())
    print(f'twin: {len(x)} faces, G {"upsample" if a.upsample else "convt"} ngf {a.ngf}, D ndf {a.ndf}, '
          f'torch {torch.__version__}, {a.threads} threads', flush=True)
    oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    B, t = 64, 0
    for ep in range(a.epochs):
        perm = torch.randperm(len(x)); t0 = time.time(); n = 0
        for i in range(0, len(x) - B + 1, B):
            real = x[perm[i:i + B]]
            fake = G(torch.randn(B, 100, 1, 1))
            lossD = F.relu(1 - D(diff_augment(real))).mean() + F.relu(1 + D(diff_augment(fake.detach()))).mean()
            oD.zero_grad(); lossD.backward(); oD.step()
            D.requires_grad_(False)
            lossG = -D(diff_augment(fake)).mean()
            oG.zero_grad(); lossG.backward(); oG.step()
            D.requires_grad_(True)
            t += 1; decay = min(0.999, (1 + t) / (10 + t))
            with torch.no_grad():
                for e, g in zip(G_ema.parameters(), G.parameters()): e.lerp_(g, 1 - decay)
            n += B
        dt = time.time() - t0
        print(f'twin epoch {ep} lossD {lossD.item():.3f} lossG {lossG.item():.3f} {n / dt:.1f} img/s', flush=True)


if __name__ == '__main__':
    main()
