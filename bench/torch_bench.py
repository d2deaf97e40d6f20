"""PyTorch side of `./dev.sh bench`: the seed's code in eager mode, TorchScript frozen, and
torch.compile, on the same machine and thread count as the tch side. Prints JSON of medians (s)."""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
import seed_vgg  # noqa: E402


def median(f, x, iters, warmup=3):
    for _ in range(warmup):
        f(x)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    threads, iters64, iters1, iters_train = (int(a) for a in sys.argv[1:5])
    skip_compile = os.environ.get("VGGDSL_BENCH_SKIP_COMPILE") == "1"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = seed_vgg.VGG().eval()
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    with torch.no_grad():
        # The seed's forward builds nn.AvgPool2d inline, which torch.jit.script refuses: trace it.
        traced = torch.jit.trace(net, torch.randn(1, 3, 32, 32))
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        compiled = None if skip_compile else torch.compile(net)
        for batch, iters in ((64, iters64), (1, iters1)):
            x = torch.randn(batch, 3, 32, 32)
            out[f"eager_b{batch}"] = median(net, x, iters)
            out[f"torchscript_b{batch}"] = median(frozen, x, iters)
            if compiled is not None:
                with torch._inductor.config.patch(freezing=True):
                    out[f"compile_b{batch}"] = median(compiled, x, iters, warmup=5)

    def train_step(model, opt, x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    x = torch.randn(64, 3, 32, 32)
    y = torch.randint(0, 10, (64,))
    for name, model in (("eager", seed_vgg.VGG()), ("compile", None if skip_compile else torch.compile(seed_vgg.VGG()))):
        if model is None:
            continue
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        out[f"{name}_train_b64"] = median(lambda x: train_step(model, opt, x, y), x, iters_train)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
