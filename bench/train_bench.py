"""PyTorch side of `examples/train_bench.rs`: the seed's model (`seed_vgg.VGG`) trained by the seed's
loop (SGD lr 0.01, momentum 0.9, weight decay 5e-4; zero_grad, forward, F.cross_entropy, backward,
step) in eager mode, driven through a pipe so that the Rust side can alternate with it.

    python train_bench.py THREADS BATCH [--reuse-freed-memory]

`--reuse-freed-memory` first applies the glibc setting that `vggdsl train` uses (malloc.py), so
that the two can be compared with and without it.

Reads lines `steps N` on stdin and answers each with a JSON list of the N steps' wall times (s);
`quit` or end of input stops. Batches are made once, before timing (normalised random images and
labels), so the times hold no data loading: the comparison favours PyTorch there.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

import malloc  # bench/malloc.py, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test-support", "python"))
import seed_vgg  # noqa: E402


def main():
    reuse_freed_memory = malloc.apply_if_asked()
    threads, batch = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = seed_vgg.VGG().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    batches = [(torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))) for _ in range(8)]
    step = 0
    print(json.dumps({"ready": True, "threads": torch.get_num_threads(),
                      "reuse_freed_memory": reuse_freed_memory}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == 'quit':
            break
        times = []
        for _ in range(int(words[1])):
            x, y = batches[step % len(batches)]
            step += 1
            t = time.perf_counter()
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            loss.item()
            times.append(time.perf_counter() - t)
        print(json.dumps(times), flush=True)


if __name__ == '__main__':
    main()
